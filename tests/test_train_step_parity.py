"""Two training steps of wsolax equal the CVPR'20 benchmark's (clovaai/wsolevaluation), in float64.

ResNet50 + ADL and VGG16-GAP + ADL as `configs/wsolevaluation.py:cub,adl,<arch>` builds them,
each with every ADL layer forced onto one branch (drop mask: drop rate 1; importance map: drop
rate 0), training-mode BatchNorm, batch 2 at 48 px, 5 classes. The same random tensors go into an
independent torch.nn.functional forward with autograd and the benchmark's optimizer
(`torch.optim.SGD` with its main.py parameter groups: lr and lr x lr_classifier_ratio, momentum,
coupled weight decay, Nesterov) and into wsolax's converter + jitted `make_train_step` with
`make_optimizer`; tests/train_step_parity_worker.py runs both (64-bit JAX has to be on before JAX
starts, so it runs in a subprocess) and reports, for every step, the loss and the worst
per-tensor relative error ||wsolax - torch||_2 / ||torch||_2 of

  grad          every parameter's gradient (the one the train step computed)
  update        every parameter's change in the step (so a wrong learning rate, 10x group,
                momentum rule or weight decay shows at full size), and `param`, the new values
  stats_update  every BatchNorm running mean / variance's change (torch momentum 0.1), and `stats`

Step 1 is one optimizer update from zero momentum; step 2 (a new batch) carries the momentum
buffer over. Every tensor of the reference is compared (ResNet50: 161 parameters + 106 running
statistics; VGG16: 30 parameters), and the new-layer group must be the benchmark's (ResNet:
layer4.* and fc.*; VGG: conv6 and fc). Measured on x86 CPUs: <= 1e-12 (losses ~1e-15); the
tolerance is the issue's 1e-7. In float32 the reference differs from itself by up to 20 % on
deep gradients at batch 2 (ReLU and mask decisions flip), so only float64 is compared.
Not a `numerics` test: the float64 roundings of AVX2 and AVX-512 (~1e-16) lie nine orders of
magnitude below the tolerance, so CI's AVX2 rerun leaves out these float64 compilations, the
rerun's costliest (122 of its 583 worker-seconds, measured on the 2-core EPYC).
Cost: one worker process per backbone and test session (conftest's `once`: both branches' tests
read it, on whichever xdist worker they run); most of it is compiling the float64 train steps, two
per backbone (the forced drop rate is a compile-time constant).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOL = 1e-7
ARCHS = ("resnet50", "vgg16")
BRANCHES = ("drop", "importance")
KINDS = {"resnet50": {"grad", "update", "param", "stats_update", "stats"},
         "vgg16": {"grad", "update", "param"}}


def _run(arch: str) -> dict:
    """Both branches of `arch`, in one worker process (imports and start-up paid once)."""
    # XLA_FLAGS from outside still apply.
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "train_step_parity_worker.py"),
         *(f"{arch}:{b}" for b in BRANCHES)],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert out.returncode == 0, out.stderr[-6000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("branch", BRANCHES)
@pytest.mark.parametrize("arch", ARCHS)
def test_two_train_steps_equal_the_reference(arch, branch, once):
    r = once(f"train_step_parity_{arch}", lambda: _run(arch))[f"{arch}-{branch}"]
    assert r["param_dtypes"] == ["float64"]
    assert r["compared"] == r["reference_tensors"]  # nothing of the reference left out
    assert len(r["compared"]) == {"resnet50": 161 + 106, "vgg16": 30}[arch]
    # The 10x group, by name: wsolax's optim.new_layer_prefixes vs the benchmark's main.py rule.
    assert r["wsolax_new_group"] == r["reference_new_group"]
    new = r["reference_new_group"]
    if arch == "resnet50":
        assert new and all(n.startswith(("layer4.", "fc.")) for n in new) and len(new) == 32
    else:
        assert new == ["conv6.bias", "conv6.weight", "fc.bias", "fc.weight"]
    assert len(r["steps"]) == 2
    for i, step in enumerate(r["steps"], start=1):
        worst = ", ".join(f"{k} {e:.1e} ({name})" for k, (e, name) in step["worst"].items())
        print(f"\n{arch} {branch} step {i}: loss {step['loss']:.6f} rel {step['loss_rel']:.1e}; "
              f"{worst}")
        assert step["loss_rel"] <= TOL, (i, step["loss"], step["ref_loss"])
        assert set(step["worst"]) == KINDS[arch]
        for kind, (err, name) in step["worst"].items():
            assert err <= TOL, f"step {i}: {kind} of {name} differs by {err:.2e} (relative)"
