import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(forced_devices: int, mesh_devices: int, *extra: str) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={forced_devices}",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "sharding_worker.py"), str(mesh_devices), *extra],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_eight_devices_give_the_same_training_and_cams_as_one():
    one = _run(1, 1)
    eight = _run(8, 8)
    assert one["mesh"] == 1 and eight["mesh"] == 8 and eight["devices"] == 8
    assert eight["replicated_on"] == [8]  # parameters live on every device
    # Same maths, only the reduction order across shards differs.
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(eight["param_sum"], one["param_sum"], rtol=1e-5)
    assert one["losses"][0] != one["losses"][-1]  # the steps did train
    # CAM extraction: batch-sharded output, same score maps (resized to 48x40, in [0, 1]).
    assert eight["scoremap_shards"] == 8 and one["scoremap_shards"] == 1
    assert eight["scoremap_shape"] == [16, 48, 40]
    assert 0.0 <= eight["scoremap_range"][0] and eight["scoremap_range"][1] <= 1.0
    np.testing.assert_allclose(eight["scoremap_sum"], one["scoremap_sum"], rtol=1e-4)


def test_attention_dropout_layers_train_alike_on_eight_devices_and_one():
    # ADL, DGDM and DFM with per-image random choices: the draws come from the step key, not from
    # the device a sample lands on, so sharding changes only the reduction order.
    one = _run(1, 1, "methods")
    eight = _run(8, 8, "methods")
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(eight["param_sum"], one["param_sum"], rtol=1e-5)
    assert one["losses"][0] != one["losses"][-1]


def test_where_to_look_trains_alike_on_eight_devices_and_one():
    # The complementary pair is drawn per image on device from the step key, and the two views are
    # interleaved image by image, so sharding changes only the reduction order.
    one = _run(1, 1, "wtl")
    eight = _run(8, 8, "wtl")
    assert eight["replicated_on"] == [8]
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(eight["param_sum"], one["param_sum"], rtol=1e-5)
    assert one["losses"][0] != one["losses"][-1]
    np.testing.assert_allclose(eight["scoremap_sum"], one["scoremap_sum"], rtol=1e-4)
