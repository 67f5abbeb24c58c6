"""Checkpoints of the CVPR'20 benchmark's ACoL models (clovaai/wsolevaluation `VggAcol`,
`ResNetAcol`, `InceptionAcol`) load into wsolax's ACoL models and compute what they computed there.

Each test writes the checkpoint itself, as that code's `torch.save({'architecture', 'epoch',
'state_dict', 'optimizer'})` would: random tensors, with names and shapes from the description of
the benchmark's architectures below (the 'acol' VGG layer lists, the ResNet / InceptionV3 trunks,
`classifier_A` / `classifier_B` as Sequential(conv 3x3, ReLU, conv 3x3, ReLU, conv 1x1)), never
from the code under test. The file is read back weights-only, converted with the ACoL layout, and
wsolax's eval-mode logits and CAMs are compared with a torch.nn.functional forward of those tensors:
the trunk, then the benchmark's head (test_acol.torch_acol_nchw: logits of A; the CAM of class c is
`return_cam(labels=c)`, erased by c, max of both normalised maps).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from backbone_testing import numpy_variables, torch_one_thread  # noqa: F401  (autouse fixture)
from test_acol import torch_acol_nchw

from wsolax.config import load_config
from wsolax.registry import build_model
from wsolax.weights import WeightError, convert_torch_state_dict, load_state_dict
from wsolax.weights.layouts import check_whole_model, torch_name_for
from wsolax.weights.wsolevaluation_acol import torch_name

# slow: torch parity of whole ImageNet architectures (pytest -m 'not slow' leaves these out)
pytestmark = [pytest.mark.numerics, pytest.mark.slow]

NUM_CLASSES = 6
WIDTH = 1024  # the benchmark's branch width on every backbone
TOL = 1e-4
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# VGG16 `features` of the benchmark's 'acol' architecture: numbers are 3x3 convs (+ReLU: two
# slots), 'M1' a 3x3/2 max pool with padding 1, 'M2' a 3x3/1 max pool with padding 1.
VGG_ACOL = {
    False: [64, 64, "M1", 128, 128, "M1", 256, 256, 256, "M1", 512, 512, 512, "M1",
            512, 512, 512, "M2"],
    True: [64, 64, "M1", 128, 128, "M1", 256, 256, 256, "M1", 512, 512, 512, "M2",
           512, 512, 512, "M2"],
}


def _rng(seed):
    return np.random.default_rng(seed)


def _conv(rng, cout, cin, k):
    return (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(
        np.float32)


def _bias(rng, n):
    return (rng.standard_normal(n) * 0.1).astype(np.float32)


def add_branches(sd, cin, seed, num_classes=NUM_CLASSES):
    """classifier_A / classifier_B: `.0` conv 3x3 cin -> 1024, `.2` 3x3 1024 -> 1024, `.4` 1x1 ->
    classes, each with bias (ReLUs at `.1`, `.3` hold no tensors)."""
    rng = _rng(seed)
    for branch in ("classifier_A", "classifier_B"):
        for index, (cout, c_in, k) in (("0", (WIDTH, cin, 3)), ("2", (WIDTH, WIDTH, 3)),
                                        ("4", (num_classes, WIDTH, 1))):
            sd[f"{branch}.{index}.weight"] = _conv(rng, cout, c_in, k)
            sd[f"{branch}.{index}.bias"] = _bias(rng, cout)
    return sd


def torch_branches(sd):
    t = {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}

    def branch(name):
        def run(x):
            x = F.relu(F.conv2d(x, t[f"{name}.0.weight"], t[f"{name}.0.bias"], padding=1))
            x = F.relu(F.conv2d(x, t[f"{name}.2.weight"], t[f"{name}.2.bias"], padding=1))
            return F.conv2d(x, t[f"{name}.4.weight"], t[f"{name}.4.bias"])
        return run

    return branch("classifier_A"), branch("classifier_B")


def vgg_acol_state_dict(large, seed=0):
    rng, sd, index, cin = _rng(seed), {}, 0, 3
    for v in VGG_ACOL[large]:
        if isinstance(v, str):
            index += 1
            continue
        sd[f"features.{index}.weight"], sd[f"features.{index}.bias"] = _conv(rng, v, cin, 3), \
            _bias(rng, v)
        index, cin = index + 2, v
    return add_branches(sd, 512, seed + 1)


def vgg_acol_features(sd, large, x_nhwc):
    """VggAcol.forward up to the branches: `features`, then avg_pool2d(3, 1, 1) (NCHW)."""
    t = {k: torch.from_numpy(v) for k, v in sd.items()}
    x, index = torch.from_numpy(np.array(x_nhwc.transpose(0, 3, 1, 2))), 0
    with torch.no_grad():
        for v in VGG_ACOL[large]:
            if v in ("M1", "M2"):
                x = F.max_pool2d(x, 3, 2 if v == "M1" else 1, 1)
                index += 1
                continue
            x = F.relu(F.conv2d(x, t[f"features.{index}.weight"], t[f"features.{index}.bias"],
                                padding=1))
            index += 2
        return F.avg_pool2d(x, 3, 1, 1)


def _checkpoint_file(tmp_path, arch, sd):
    """`sd` saved as the benchmark's Trainer._torch_save_model does, with an optimizer state."""
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "nesterov": True,
                                                "weight_decay": 1e-4, "params": []}]}
    path = tmp_path / "last_checkpoint.pth.tar"
    torch.save({"architecture": arch, "epoch": 3, "state_dict": tensors, "optimizer": optimizer},
               path)
    return path


def _cfg(arch, *overrides, acol=None):
    return load_config(f"configs/wsolevaluation.py:cub,cam,{arch}",
                       [f"--config.data.num_classes={NUM_CLASSES}",
                        f"--config.model.methods.acol={acol or {}}", *overrides])


def _convert(cfg, sd, x):
    model = build_model(cfg)
    variables, report = convert_torch_state_dict(sd, numpy_variables(model, x),
                                                 torch_name(cfg.model))
    check_whole_model(report, "wsolevaluation")
    return model, variables, report


def _compare(tmp_path, arch, cfg, sd, x, features_nchw, what):
    read = load_state_dict(_checkpoint_file(tmp_path, arch, sd))
    assert sorted(read) == sorted(sd)
    model, variables, report = _convert(cfg, read, x)
    assert len(report.loaded) == len([k for k in sd if not k.endswith("num_batches_tracked")])
    assert not report.new_layers and not report.unused
    branch_a, branch_b = torch_branches(sd)
    labels = np.arange(x.shape[0]) % NUM_CLASSES
    apply = _jit(lambda v, im, c: model.apply(v, im, train=False, cam_classes=c))
    out = apply(variables, x, labels[:, None])
    ref_logits, _, ref_cams, margin = torch_acol_nchw(branch_a, branch_b, features_nchw, labels)
    assert margin > 1e-3  # no attention value so close to 0.7 that rounding could flip it
    logits, cams = np.asarray(out["logits"]), np.asarray(out["cams"])[..., 0]
    err_l = float(np.abs(logits - ref_logits).max())
    err_c = float(np.abs(cams - ref_cams).max())
    print(f"\n{what}: max|logits| {np.abs(ref_logits).max():.3g}; errors {err_l:.2e}, "
          f"cams {err_c:.2e}")
    assert err_l <= TOL * np.abs(ref_logits).max(), what
    assert err_c <= 1e-4, what  # CAMs are in [0, 1]
    assert np.abs(ref_logits).max() > 0.1 and ref_cams.std() > 0.05  # nothing vanished
    np.testing.assert_allclose(np.asarray(out["features"]).transpose(0, 3, 1, 2),
                               features_nchw.numpy(), rtol=1e-4,
                               atol=1e-4 * float(features_nchw.abs().max()))
    return model, variables, branch_a, branch_b


# ------------------------------------------------------------------ VGG16
@pytest.mark.parametrize("large", [False, True])
def test_vgg16_acol_checkpoint_computes_the_reference(tmp_path, large):
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)
    sd = vgg_acol_state_dict(large)
    # 'M1'/'M2' take one slot each: the convs keep torchvision's indices for both map sizes.
    assert {k.split(".")[1] for k in sd if k.startswith("features.")} == {
        "0", "2", "5", "7", "10", "12", "14", "17", "19", "21", "24", "26", "28"}
    cfg = _cfg("vgg16", f"--config.model.large_feature_map={large}")
    features = vgg_acol_features(sd, large, x)
    assert features.shape[2:] == ((8, 8) if large else (4, 4))
    model, variables, branch_a, branch_b = _compare(tmp_path, "vgg16", cfg, sd, x, features,
                                                    f"vgg16 acol large={large}")
    # Every class's CAM (cam_classes=None) is that class's return_cam.
    out = _jit(lambda v, im: model.apply(v, im, train=False))(variables, x)
    for c in range(NUM_CLASSES):
        _, _, ref, margin = torch_acol_nchw(branch_a, branch_b, features, np.full(2, c))
        assert margin > 1e-4
        np.testing.assert_allclose(np.asarray(out["cams"])[..., c], ref, atol=1e-4)


def test_a_cam_checkpoint_is_refused_by_an_acol_config():
    # VggCam's names: the same features, then conv6 and fc instead of the two branches.
    rng = _rng(4)
    sd = {k: v for k, v in vgg_acol_state_dict(False).items() if k.startswith("features.")}
    sd["conv6.weight"], sd["conv6.bias"] = _conv(rng, 1024, 512, 3), _bias(rng, 1024)
    sd["fc.weight"], sd["fc.bias"] = _conv(rng, NUM_CLASSES, 1024, 1)[:, :, 0, 0], \
        _bias(rng, NUM_CLASSES)
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(WeightError, match="classifier_A"):
        _convert(_cfg("vgg16"), sd, x)


# ------------------------------------------------------------------ ResNet50
def test_resnet50_acol_checkpoint_computes_the_reference(tmp_path):
    from test_resnet import _torch_forward, _torch_state_dict

    trunk = _torch_state_dict("resnet50", num_classes=NUM_CLASSES)
    x = np.random.default_rng(2).standard_normal((2, 64, 64, 3)).astype(np.float32)
    features, _ = _torch_forward(trunk, "resnet50", x, large=False)  # layer4, NHWC
    sd = {k: v for k, v in trunk.items() if not k.startswith("fc.")}  # ResNetAcol has no fc
    add_branches(sd, 2048, seed=5)
    features = torch.from_numpy(np.array(features.transpose(0, 3, 1, 2)))
    _compare(tmp_path, "resnet50", _cfg("resnet50", acol={"init": "he"}), sd,
             x, features, "resnet50 acol")


# ------------------------------------------------------------------ InceptionV3
def test_inception_v3_acol_checkpoint_computes_the_reference(tmp_path):
    from test_inception import REMOVED, random_state_dict, reference_forward

    sd = {k: np.array(v) for k, v in random_state_dict(0).items() if not k.startswith(REMOVED)}
    x = np.random.default_rng(3).standard_normal((2, 64, 64, 3)).astype(np.float32)
    # No head convs: the trunk's output is Mixed_6e (InceptionAcol.forward's `feature`).
    features, _ = reference_forward(sd, np.array(x.transpose(0, 3, 1, 2)), [],
                                    np.zeros((1, 768), np.float32), np.zeros(1, np.float32),
                                    large=False)
    add_branches(sd, 768, seed=6)
    _compare(tmp_path, "inception_v3", _cfg("inception_v3"), sd, x, torch.from_numpy(features),
             "inception_v3 acol")


# ------------------------------------------------------------------ names and refusals
def test_torch_names_of_the_heads_and_trunks():
    names = {arch: torch_name(_cfg(arch).model) for arch in ("vgg16", "resnet50", "inception_v3")}
    for name in names.values():
        assert name(("head", "classifier_A", "conv1")) == "classifier_A.0"
        assert name(("head", "classifier_A", "conv2")) == "classifier_A.2"
        assert name(("head", "classifier_B", "classes")) == "classifier_B.4"
        assert name(("head", "classifier")) is None  # no fc / SPG_A4 in the ACoL models
    assert names["vgg16"](("backbone", "conv5_3")) == "features.28"
    assert names["vgg16"](("backbone", "wsol_conv6")) is None
    assert names["resnet50"](("backbone", "layer4_2", "conv1", "conv")) == "layer4.2.conv1"
    assert names["inception_v3"](("backbone", "Mixed_6e", "branch1x1", "conv")) == \
        "Mixed_6e.branch1x1.conv"


def test_the_wsolevaluation_layout_dispatches_to_acol():
    cfg = _cfg("vgg16")
    name = torch_name_for(cfg, "wsolevaluation")
    assert name(("head", "classifier_B", "conv2")) == "classifier_B.2"


def test_what_the_benchmark_has_not_is_refused():
    with pytest.raises(WeightError, match="not 'resnet18'"):
        torch_name(_cfg("resnet50", "--config.model.backbone=resnet18").model)
    with pytest.raises(WeightError, match="insert no layers"):
        torch_name(_cfg("resnet50", "--config.model.inserts=(('layer4', 'adl'),)").model)
