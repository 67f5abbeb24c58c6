"""1 vs 8 devices: the same training and the same CAMs, only the reduction order differs.

The comparisons run a float64 model (64-bit JAX): there the two reduction orders agree to ~1e-15
relative, far below any ReLU input, attention threshold or max-pool tie of the random data, so the
tolerance holds on every CPU (AVX2 or AVX-512). In float32 the same check holds only by luck of
rounding: one ReLU input of the width-4 model sits at -8.5e-8 and float32 puts it on either side of
zero depending on the instruction set and batch split. A float32 run checks what does not depend on
rounding (shardings, shapes, ranges).

So these are not `numerics` tests and run once, on the machine's own instruction set: float64
rounding (~1e-16) on AVX2 or AVX-512 lies seven orders of magnitude below RTOL, as for the
train-step parity (tests/test_train_step_parity.py).
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from forced_devices import forced_devices_env

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
RTOL = 1e-9  # float64 rounding over 3 SGD steps, with margin


# Every setting the tests compare, "<mesh devices>:<mode>:<precision>"; one worker process runs
# them all with 8 devices forced (a 1-device mesh is its first device).
SETTINGS = [f"{mesh}:{mode}:float64" for mode in ("cam", "methods", "wtl") for mesh in (1, 8)]
FLOAT32 = "8:cam:float32"


def _run() -> dict:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharding_worker.py"), *SETTINGS, FLOAT32],
        env=forced_devices_env(8), capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def runs(once):
    """The worker's results, one process per test session."""
    return once("sharding_worker", _run)


def test_eight_devices_give_the_same_training_and_cams_as_one(runs):
    one, eight = runs["1:cam:float64"], runs["8:cam:float64"]
    assert one["param_dtypes"] == eight["param_dtypes"] == ["float64"]
    assert one["mesh"] == 1 and eight["mesh"] == 8 and eight["devices"] == 8
    assert eight["replicated_on"] == [8]  # parameters live on every device
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=RTOL)
    np.testing.assert_allclose(eight["param_sum"], one["param_sum"], rtol=RTOL)
    assert one["losses"][0] != one["losses"][-1]  # the steps did train
    # CAM extraction: batch-sharded output, same score maps (resized to 48x40, in [0, 1]).
    assert eight["scoremap_shards"] == 8 and one["scoremap_shards"] == 1
    assert eight["scoremap_shape"] == [16, 48, 40]
    np.testing.assert_allclose(eight["scoremap_sum"], one["scoremap_sum"], rtol=1e-6)


def test_float32_training_is_sharded_and_replicated_on_eight_devices(runs):
    eight = runs[FLOAT32]
    assert eight["param_dtypes"] == ["float32"]
    assert eight["mesh"] == 8 and eight["replicated_on"] == [8]
    assert eight["scoremap_shards"] == 8 and eight["scoremap_shape"] == [16, 48, 40]
    assert 0.0 <= eight["scoremap_range"][0] and eight["scoremap_range"][1] <= 1.0
    assert all(np.isfinite(eight["losses"])) and eight["losses"][0] != eight["losses"][-1]


def test_attention_dropout_layers_train_alike_on_eight_devices_and_one(runs):
    # ADL, DGDM and DFM with per-image random choices: the draws come from the step key, not from
    # the device a sample lands on, so sharding changes only the reduction order.
    one, eight = runs["1:methods:float64"], runs["8:methods:float64"]
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=RTOL)
    np.testing.assert_allclose(eight["param_sum"], one["param_sum"], rtol=RTOL)
    assert one["losses"][0] != one["losses"][-1]


def test_where_to_look_trains_alike_on_eight_devices_and_one(runs):
    # The complementary pair is drawn per image on device from the step key, and the two views are
    # interleaved image by image, so sharding changes only the reduction order.
    one, eight = runs["1:wtl:float64"], runs["8:wtl:float64"]
    assert eight["replicated_on"] == [8]
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=RTOL)
    np.testing.assert_allclose(eight["param_sum"], one["param_sum"], rtol=RTOL)
    assert one["losses"][0] != one["losses"][-1]
    np.testing.assert_allclose(eight["scoremap_sum"], one["scoremap_sum"], rtol=1e-6)
