"""Checkpoints written by the CVPR'20 benchmark's code (clovaai/wsolevaluation) load into wsolax and
compute what they computed there.

The test writes each checkpoint itself, as that code's `torch.save({'architecture', 'epoch',
'state_dict', 'optimizer'})` would: random weights, names and shapes from its own description of
the benchmark's architectures below (layer lists, ADL positions, head modules), never from the
code under test. The file is read back weights-only, converted with `--layout wsolevaluation`,
and wsolax's eval-mode logits and CAMs are compared with an independent torch.nn.functional
forward of the same tensors (CAM of class k as the benchmark computes it: VGG / ResNet
mean_c(fc.weight[k, c] * features[c]); InceptionV3 the 1x1 class conv's map k).
"""

from __future__ import annotations

import functools
import json

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from backbone_testing import numpy_variables, torch_one_thread  # noqa: F401  (autouse fixture)

from wsolax.cli import convert_main, eval_main
from wsolax.config import load_config
from wsolax.registry import build_model
from wsolax.weights import WeightError, convert_torch_state_dict, load_state_dict
from wsolax.weights.layouts import check_whole_model, torch_name_for

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out). numerics (CI's
# AVX2 rerun): the float32 comparisons with the reference; the refusals, names, shapes (traced
# only) and the convert -> eval.py flow hold on either instruction set.
pytestmark = pytest.mark.slow

NUM_CLASSES = 6
TOL = 1e-4
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# ------------------------------------------------------------------ the benchmark's architectures
# VGG16 `features`: numbers are 3x3 convs (+ReLU: two slots), 'M' a 2x2/2 max pool, 'A' an ADL.
VGG_FEATURES = {
    ("cam", False): [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                     512, 512, 512],
    ("cam", True): [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512,
                    512, 512, 512],
    ("adl", False): [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", "A", 512, 512, 512, "A", "M",
                     512, 512, 512, "A"],
    ("adl", True): [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", "A", 512, 512, 512, "A",
                    512, 512, 512, "A"],
}
# ResNet50 ADL: an ADL module after these blocks of layer3 / layer4, inside the stage Sequential.
RESNET_ADL_AFTER = {3: (0,), 4: (0, 2)}


def _rng(seed):
    return np.random.default_rng(seed)


def _conv(rng, cout, cin, k):
    scale = np.sqrt(2.0 / (cin * k * k))
    return (rng.standard_normal((cout, cin, k, k)) * scale).astype(np.float32)


def _bias(rng, n):
    return (rng.standard_normal(n) * 0.1).astype(np.float32)


def vgg_state_dict(method, large, seed=0, num_classes=NUM_CLASSES):
    rng, sd, index, cin = _rng(seed), {}, 0, 3
    for v in VGG_FEATURES[(method, large)]:
        if v in ("M", "A"):
            index += 1
            continue
        sd[f"features.{index}.weight"] = _conv(rng, v, cin, 3)
        sd[f"features.{index}.bias"] = _bias(rng, v)
        index, cin = index + 2, v
    sd["conv6.weight"], sd["conv6.bias"] = _conv(rng, 1024, 512, 3), _bias(rng, 1024)
    sd["fc.weight"] = (rng.standard_normal((num_classes, 1024)) / 32).astype(np.float32)
    sd["fc.bias"] = _bias(rng, num_classes)
    return sd


def vgg_reference(sd, method, large, x_nhwc):
    """(logits, CAMs (B, h, w, K)) of the benchmark's VggCam in eval mode (ADL = identity)."""
    t = {k: torch.from_numpy(v) for k, v in sd.items()}
    x, index = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()), 0
    with torch.no_grad():
        for v in VGG_FEATURES[(method, large)]:
            if v == "M":
                x = F.max_pool2d(x, 2, 2)
            if v in ("M", "A"):
                index += 1
                continue
            x = F.relu(F.conv2d(x, t[f"features.{index}.weight"], t[f"features.{index}.bias"],
                                padding=1))
            index += 2
        x = F.relu(F.conv2d(x, t["conv6.weight"], t["conv6.bias"], padding=1))
        return _linear_cam(x, t["fc.weight"], t["fc.bias"])


def _linear_cam(features_nchw, fc_w, fc_b):
    logits = F.linear(features_nchw.mean(dim=(2, 3)), fc_w, fc_b)
    # cams[b, k] = mean_c fc_w[k, c] * features[b, c]  (the benchmark's cam_weights * feature_map)
    cams = (fc_w[None, :, :, None, None] * features_nchw[:, None]).mean(dim=2)
    return logits.numpy(), cams.permute(0, 2, 3, 1).numpy()


def resnet_checkpoint_names(sd, method):
    """Rename torchvision block indices to the benchmark's Sequential indices (ADL slots)."""
    if method != "adl":
        return dict(sd)
    out = {}
    for name, value in sd.items():
        parts = name.split(".")
        if parts[0].startswith("layer"):
            stage, block = int(parts[0][5:]), int(parts[1])
            before = sum(1 for after in RESNET_ADL_AFTER.get(stage, ()) if after < block)
            parts[1] = str(block + before)
        out[".".join(parts)] = value
    return out


def _checkpoint_file(tmp_path, arch, sd):
    """Write `sd` as the benchmark's Trainer._torch_save_model would (optimizer state included)."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    first = next(iter(tensors.values()))
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros_like(first)}},
                 "param_groups": [{"lr": 0.01, "momentum": 0.9, "dampening": 0,
                                   "weight_decay": 1e-4, "nesterov": True, "params": [0]}]}
    path = tmp_path / "best_checkpoint.pth.tar"
    torch.save({"architecture": arch, "epoch": 7, "state_dict": tensors, "optimizer": optimizer},
               path)
    return path


def _cfg(method, arch, *overrides):
    return load_config(f"configs/wsolevaluation.py:cub,{method},{arch}",
                       [f"--config.data.num_classes={NUM_CLASSES}", *overrides])


def _convert(cfg, sd, x):
    model = build_model(cfg)
    variables, report = convert_torch_state_dict(sd, numpy_variables(model, x),
                                                 torch_name_for(cfg, "wsolevaluation"))
    check_whole_model(report, "wsolevaluation")
    return model, variables, report


def _compare(model, variables, x, ref_logits, ref_cams, what):
    out = _jit(lambda v, im: model.apply(v, im, train=False))(variables, x)
    logits, cams = np.asarray(out["logits"]), np.asarray(out["cams"])
    assert cams.shape == ref_cams.shape, what
    err_l = float(np.abs(logits - ref_logits).max())
    err_c = float(np.abs(cams - ref_cams).max())
    print(f"\n{what}: max|logits| {np.abs(ref_logits).max():.3g}, max|cams| "
          f"{np.abs(ref_cams).max():.3g}; errors {err_l:.2e}, {err_c:.2e}")
    # relative to each output's scale (CAMs are averages over 1024-2048 channels: ~1e-3)
    assert err_l <= TOL * np.abs(ref_logits).max(), what
    assert err_c <= TOL * np.abs(ref_cams).max(), what
    assert np.abs(ref_logits).max() > 0.1 and np.abs(ref_cams).std() > 1e-5  # nothing vanished
    return out


# ------------------------------------------------------------------ VGG16
VGG_X = np.random.default_rng(1).standard_normal((2, 48, 48, 3)).astype(np.float32)


@pytest.mark.numerics
@pytest.mark.parametrize("method,large", [("cam", False), ("adl", False), ("cam", True),
                                          ("adl", True)])
def test_vgg16_checkpoint_computes_the_reference(tmp_path, method, large):
    sd = vgg_state_dict(method, large)
    path = _checkpoint_file(tmp_path, "vgg16", sd)
    read = load_state_dict(path)  # weights-only: the optimizer's state and the ints are fine
    assert sorted(read) == sorted(sd)
    cfg = _cfg(method, "vgg16", f"--config.model.large_feature_map={large}")
    model, variables, report = _convert(cfg, read, VGG_X)
    assert len(report.loaded) == len(sd) and not report.new_layers
    ref_logits, ref_cams = vgg_reference(sd, method, large, VGG_X)
    _compare(model, variables, VGG_X, ref_logits, ref_cams, f"vgg16 {method} large={large}")


def test_vgg16_adl_placements_and_map_sizes_are_told_apart():
    cfg = _cfg("adl", "vgg16")
    assert cfg.model.inserts == (("pool3", "adl"), ("conv4_3", "adl"), ("conv5_3", "adl"))
    assert dict(cfg.model.methods.adl) == {"drop_rate": 0.75, "gamma": 0.9}
    paper = load_config("configs/cub_adl_vgg16.py")
    assert paper.model.inserts == (("pool3", "adl"), ("pool4", "adl"), ("conv5_3", "adl"))
    assert paper.model.methods.adl.gamma == 0.8
    # A 28x28 checkpoint does not fit a 14x14 config (conv5_x sit elsewhere), nor a CAM one an ADL
    # config: refused, naming the tensors.
    for sd, method in ((vgg_state_dict("adl", True), "adl"), (vgg_state_dict("cam", False), "adl"),
                       (vgg_state_dict("adl", False), "cam")):
        cfg = _cfg(method, "vgg16")
        with pytest.raises(WeightError, match="features"):
            _convert(cfg, sd, VGG_X)


# ------------------------------------------------------------------ ResNet50
@pytest.fixture(scope="module")
def resnet50_weights():
    from test_resnet import _torch_state_dict  # torchvision-named random ResNet50 (test_resnet)

    return _torch_state_dict("resnet50", num_classes=NUM_CLASSES)


@pytest.mark.numerics
@pytest.mark.parametrize("method", ["cam", "adl"])
def test_resnet50_checkpoint_computes_the_reference(tmp_path, resnet50_weights, method):
    from test_resnet import _torch_forward  # independent torch.nn.functional ResNet

    sd = resnet_checkpoint_names(resnet50_weights, method)
    if method == "adl":
        assert "layer3.6.conv1.weight" in sd and "layer4.3.conv1.weight" in sd
    read = load_state_dict(_checkpoint_file(tmp_path, "resnet50", sd))
    x = np.random.default_rng(2).standard_normal((2, 64, 64, 3)).astype(np.float32)
    cfg = _cfg(method, "resnet50")
    model, variables, report = _convert(cfg, read, x)
    assert not report.new_layers and not report.unused
    features, _ = _torch_forward(resnet50_weights, "resnet50", x, large=False)
    ref_logits, ref_cams = _linear_cam(torch.from_numpy(features.transpose(0, 3, 1, 2).copy()),
                                       torch.from_numpy(sd["fc.weight"]),
                                       torch.from_numpy(sd["fc.bias"]))
    _compare(model, variables, x, ref_logits, ref_cams, f"resnet50 {method}")


def test_resnet50_adl_checkpoint_is_refused_by_a_cam_config(resnet50_weights):
    """Today's torchvision mapping would read shifted blocks; the layout counts ADL slots."""
    sd = resnet_checkpoint_names(resnet50_weights, "adl")
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(WeightError, match=r"layer3\.1\.conv1\.weight"):
        _convert(_cfg("cam", "resnet50"), sd, x)


# ------------------------------------------------------------------ InceptionV3
def inception_state_dict(seed=0):
    """torchvision's names up to Mixed_6e (test_inception's description), then the benchmark's
    head: SPG_A3_1b.0 (3x3 768 -> 1024), SPG_A3_2b.0 (3x3 1024 -> 1024), SPG_A4 (1x1 -> K)."""
    from test_inception import REMOVED, random_state_dict

    sd = {k: np.array(v) for k, v in random_state_dict(seed).items() if not k.startswith(REMOVED)}
    rng = _rng(seed + 1)
    sd["SPG_A3_1b.0.weight"], sd["SPG_A3_1b.0.bias"] = _conv(rng, 1024, 768, 3), _bias(rng, 1024)
    sd["SPG_A3_2b.0.weight"], sd["SPG_A3_2b.0.bias"] = _conv(rng, 1024, 1024, 3), _bias(rng, 1024)
    sd["SPG_A4.weight"] = _conv(rng, NUM_CLASSES, 1024, 1)
    sd["SPG_A4.bias"] = _bias(rng, NUM_CLASSES)
    return sd


@pytest.mark.numerics
@pytest.mark.parametrize("method", ["cam", "adl"])
def test_inception_v3_checkpoint_computes_the_reference(tmp_path, method):
    from test_inception import reference_forward  # independent torch.nn.functional InceptionV3

    sd = inception_state_dict()
    read = load_state_dict(_checkpoint_file(tmp_path, "inception_v3", sd))
    x = np.random.default_rng(3).standard_normal((2, 64, 64, 3)).astype(np.float32)
    cfg = _cfg(method, "inception_v3")
    model, variables, report = _convert(cfg, read, x)
    assert not report.new_layers and not report.unused
    heads = [(sd[f"SPG_A3_{i}b.0.weight"], sd[f"SPG_A3_{i}b.0.bias"]) for i in (1, 2)]
    features, _ = reference_forward(sd, x.transpose(0, 3, 1, 2).copy(), heads,
                                    np.zeros((1, 1024), np.float32), np.zeros(1, np.float32),
                                    large=False)
    with torch.no_grad():  # the benchmark: class conv, then average -> logits; its maps -> CAMs
        feat_map = F.conv2d(torch.from_numpy(features), torch.from_numpy(sd["SPG_A4.weight"]),
                            torch.from_numpy(sd["SPG_A4.bias"]))
    ref_logits = feat_map.mean(dim=(2, 3)).numpy()
    ref_maps = feat_map.permute(0, 2, 3, 1).numpy()
    # wsolax's CAM is the same map without the class bias and divided by the width (1024): a
    # positive affine change per class, which the evaluator's min-max normalisation removes.
    c = features.shape[1]
    ref_cams = (ref_maps - sd["SPG_A4.bias"]) / c
    out = _compare(model, variables, x, ref_logits, ref_cams, f"inception_v3 {method}")

    def minmax(m):
        lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
        return (m - lo) / (hi - lo)
    np.testing.assert_allclose(minmax(np.asarray(out["cams"], np.float64)),
                               minmax(ref_maps.astype(np.float64)), atol=1e-3)


# ------------------------------------------------------------------ refusals
def test_layout_refuses_what_the_benchmark_does_not_have():
    with pytest.raises(WeightError, match="not 'resnet18'"):
        torch_name_for(_cfg("cam", "resnet50", "--config.model.backbone=resnet18"),
                       "wsolevaluation")
    dgdm = _cfg("cam", "vgg16", "--config.model.inserts=(('pool3', 'dgdm'),)")
    with pytest.raises(WeightError, match="dgdm"):
        torch_name_for(dgdm, "wsolevaluation")
    wtl = _cfg("cam", "resnet50", "--config.model.methods.where_to_look={}")
    with pytest.raises(WeightError, match="no counterpart for the method 'where_to_look'"):
        torch_name_for(wtl, "wsolevaluation")
    with pytest.raises(WeightError, match="unknown layout"):
        torch_name_for(_cfg("cam", "vgg16"), "caffe")
    # A whole model never overwrites the config's ImageNet weights file (model.init_from).
    from wsolax.weights.for_config import convert_for_config
    with pytest.raises(WeightError, match="pass --out"):
        convert_for_config(_cfg("cam", "vgg16"), "unused.pth.tar", layout="wsolevaluation")


def test_class_count_mismatch_is_refused_not_skipped():
    sd = vgg_state_dict("cam", False)
    cfg = _cfg("cam", "vgg16", "--config.data.num_classes=200")
    with pytest.raises(WeightError, match="class count"):
        _convert(cfg, sd, VGG_X)


# ------------------------------------------------------------------ convert -> eval.py
def test_convert_then_eval_py_scores_the_checkpoint(tmp_path, capsys):
    """The documented flow on a tiny dataset: convert with --eval-workdir, then eval.py."""
    config = "configs/wsolevaluation.py:cub,adl,vgg16"
    overrides = ["--config.data.source=synthetic", f"--config.data.root={tmp_path / 'data'}",
                 "--config.data.num_classes=10", "--config.data.synthetic.image_size=32",
                 "--config.data.synthetic.num_train=16", "--config.data.synthetic.num_val=8",
                 "--config.data.synthetic.num_test=8", "--config.data.resize_size=36",
                 "--config.data.crop_size=32", "--config.data.num_threads=1",
                 "--config.train.batch_size=8", "--config.eval.batch_size=8",
                 "--config.eval.num_overlays=1", "--config.eval.splits=('test',)"]
    weights = _checkpoint_file(tmp_path, "vgg16", vgg_state_dict("adl", False, num_classes=10))
    run = tmp_path / "run"
    args = ["--layout", "wsolevaluation", "--config", config, *overrides, "--weights", str(weights),
            "--out", str(tmp_path / "model.safetensors"), "--eval-workdir", str(run)]
    assert convert_main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "loaded 30 tensors" in printed and "MISSING" not in printed and "unused" not in printed
    assert eval_main(["--config", config, *overrides, "--workdir", str(run)]) == 0, \
        capsys.readouterr().err
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["checkpoint_step"] == 0
    test = metrics["splits"]["test"]
    assert 0 <= test["top1_cls"] <= 100 and 0 <= test["max_box_acc"] <= 100
    # A folder that holds checkpoints is never overwritten.
    assert convert_main(args) == 2 and "already holds checkpoints" in capsys.readouterr().err


# ------------------------------------------------------------------ placements and configs
def test_named_placements():
    from wsolax.methods.placements import PLACEMENTS, paper_inserts, source_hparams

    assert PLACEMENTS == ("adl_paper", "wsolevaluation")
    stages = lambda b, p: tuple(s for s, _ in paper_inserts("adl", b, p))  # noqa: E731
    assert stages("vgg16_gap", "adl_paper") == ("pool3", "pool4", "conv5_3")
    assert stages("vgg16_gap", "wsolevaluation") == ("pool3", "conv4_3", "conv5_3")
    assert stages("resnet50", "adl_paper") == stages("resnet50", "wsolevaluation")
    assert stages("inception_v3", "wsolevaluation") == ("Mixed_5d", "Mixed_6e", "head_conv2")
    assert paper_inserts("adl", "vgg16_gap") == paper_inserts("adl", "vgg16_gap", "adl_paper")
    assert source_hparams("adl", "vgg16_gap", "adl_paper")["gamma"] == 0.8
    assert source_hparams("adl", "resnet50", "adl_paper")["gamma"] == 0.9
    for b in ("vgg16_gap", "resnet50", "inception_v3"):
        assert source_hparams("adl", b, "wsolevaluation") == {"drop_rate": 0.75, "gamma": 0.9}
    with pytest.raises(ValueError, match="unknown placement"):
        paper_inserts("adl", "vgg16_gap", "paper")
    with pytest.raises(ValueError, match="no dgdm placement"):
        paper_inserts("dgdm", "vgg16_gap", "wsolevaluation")


@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "inception_v3"])
@pytest.mark.parametrize("large", [False, True])
def test_wsolevaluation_configs_build_with_their_map_size(arch, large):
    import jax.numpy as jnp

    from wsolax.models.wsol_model import init_key

    for method in ("cam", "adl", "has", "cutmix", "acol", "spg"):
        cfg = load_config(f"configs/wsolevaluation.py:cub,{method},{arch}",
                          [f"--config.model.large_feature_map={large}"])
        model = build_model(cfg)
        out, _ = jax.eval_shape(lambda k: model.init_with_output(
            {"params": k, "dropout": k}, jnp.zeros((1, 224, 224, 3)), train=True,
            mutable=["params", "batch_stats"]), init_key(0))
        assert out["features"].shape[1:3] == ((28, 28) if large else (14, 14))
        assert out["logits"].shape == (1, 200)
    with pytest.raises(Exception, match="expected one of the benchmark's cam, adl, has, cutmix, "
                                        "acol, spg"):
        load_config(f"configs/wsolevaluation.py:cub,hide,{arch}")


@pytest.mark.numerics
def test_wsolevaluation_configs_train_at_10x_what_its_main_py_does():
    # main.py's _FEATURE_PARAM_LAYER_PATTERNS: VGG16 / InceptionV3 x10 outside the torchvision
    # features; ResNet50 x10 for 'layer4.' and 'fc.' only (so ACoL's / SPG's heads at 1x there).
    def prefixes(method, arch):
        return load_config(f"configs/wsolevaluation.py:cub,{method},{arch}").optim.new_layer_prefixes

    assert prefixes("acol", "resnet50") == ("backbone/layer4_",)
    assert prefixes("spg", "resnet50") == ("backbone/layer4_",)
    assert prefixes("cam", "resnet50") == ("head", "backbone/layer4_")
    assert prefixes("acol", "vgg16") == ("head",)
    assert set(prefixes("spg", "vgg16")) == {"head", "backbone/conv4_", "backbone/conv5_",
                                             "backbone/pool4_insert"}
    assert set(prefixes("spg", "inception_v3")) == {"head", "backbone/extra_pool_insert",
                                                    "backbone/Mixed_6d_insert"}
    cfg = load_config("configs/wsolevaluation.py:cub,acol,resnet50")
    assert dict(cfg.model.methods.acol) == {"threshold": 0.7, "init": "he"}
    assert cfg.model.inserts == ()
    spg = load_config("configs/wsolevaluation.py:cub,spg,vgg16")
    assert spg.model.inserts == (("pool4", "spg"), ("conv5_3", "spg"))
