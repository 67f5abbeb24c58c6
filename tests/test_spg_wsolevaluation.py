"""SPG checkpoints written by the CVPR'20 benchmark's code (clovaai/wsolevaluation) load into wsolax
and compute what they computed there.

Each test writes a checkpoint as that code's `torch.save({'architecture', 'epoch', 'state_dict',
'optimizer'})` would, with random tensors named and shaped after its own description of VggSpg,
ResNetSpg and InceptionSpg (typed below: module names, Sequential slots, widths), never from the
code under test. The file is read back, converted with the `wsolevaluation` layout, and wsolax's
evaluation outputs -- logits, the test CAMs (`return_cam`: the class conv's map of the class) and
the B1, B2 and C branch maps -- are compared with an independent torch.nn.functional forward of
the same tensors in evaluation mode (running BatchNorm statistics, no dropout).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from backbone_testing import torch_one_thread  # noqa: F401  (autouse fixture)
from test_wsolevaluation_layout import _checkpoint_file, _convert

from wsolax.config import base_config
from wsolax.methods.spg import BENCHMARK_HPARAMS, BENCHMARK_STAGES, spg_apply
from wsolax.registry import build_model
from wsolax.weights import WeightError, load_state_dict
from wsolax.weights.layouts import torch_name_for

pytestmark = [pytest.mark.numerics, pytest.mark.slow]

NUM_CLASSES = 6
TOL = 1e-4
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _rng(seed):
    return np.random.default_rng(seed)


def _conv_w(rng, cout, cin, k):
    return (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(
        np.float32)


def _add_conv(sd, rng, name, cout, cin, k, bias_scale=0.1):
    sd[f"{name}.weight"] = _conv_w(rng, cout, cin, k)
    sd[f"{name}.bias"] = (rng.standard_normal(cout) * bias_scale).astype(np.float32)


def _add_spg_branches(sd, rng, b_in1, b_in2, b_width, c_in):
    """SPG_B_1a, SPG_B_2a (Sequential(conv, ReLU): slot 0), SPG_B_shared and SPG_C
    (Sequential(conv3x3, ReLU, conv1x1 -> 1): slots 0 and 2), SPG_C 512 wide on all three."""
    _add_conv(sd, rng, "SPG_B_1a.0", b_width, b_in1, 3)
    _add_conv(sd, rng, "SPG_B_2a.0", b_width, b_in2, 3)
    _add_conv(sd, rng, "SPG_B_shared.0", b_width, b_width, 3)
    _add_conv(sd, rng, "SPG_B_shared.2", 1, b_width, 1)
    _add_conv(sd, rng, "SPG_C.0", 512, c_in, 3)
    _add_conv(sd, rng, "SPG_C.2", 1, 512, 1)


def _t(sd):
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def _conv(t, x, name, padding=0, stride=1):
    return F.conv2d(x, t[f"{name}.weight"], t.get(f"{name}.bias"), stride=stride,
                    padding=padding)


def _branches(t, b1_in, b2_in, trunk, class_conv):
    """The SPG heads on torch tensors: the shared B head on both taps, SPG_C and the class conv
    on the trunk. Returns NHWC numpy maps."""
    def shared(x):
        return _conv(t, F.relu(_conv(t, x, "SPG_B_shared.0", 1)), "SPG_B_shared.2")[:, 0]

    b1 = shared(F.relu(_conv(t, b1_in, "SPG_B_1a.0", 1)))
    b2 = shared(F.relu(_conv(t, b2_in, "SPG_B_2a.0", 1)))
    c = _conv(t, F.relu(_conv(t, trunk, "SPG_C.0", 1)), "SPG_C.2")[:, 0]
    feat_map = _conv(t, trunk, class_conv)
    return {"logits": feat_map.mean(dim=(2, 3)).numpy(),
            "maps": feat_map.permute(0, 2, 3, 1).numpy(),
            "logits_b1": b1.numpy(), "logits_b2": b2.numpy(), "logits_c": c.numpy()}


def _nchw(x_nhwc):
    return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))


# ------------------------------------------------------------------ VGG16 (VggSpg)
# configs_dict['spg']: the `features` Sequential stops at pool3: convs at 0, 2, 5, 7, 10, 12, 14.
VGG_FEATURES = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]


def vgg_spg_state_dict(seed=0):
    rng, sd, index, cin = _rng(seed), {}, 0, 3
    for v in VGG_FEATURES:
        if v == "M":
            index += 1
            continue
        _add_conv(sd, rng, f"features.{index}", v, cin, 3)
        index, cin = index + 2, v
    for block, cins in (("SPG_A_1", (256, 512, 512)), ("SPG_A_2", (512, 512, 512)),
                        ("SPG_A_3", (512, 512))):
        for slot, c in zip((0, 2, 4), cins):
            _add_conv(sd, rng, f"{block}.{slot}", 512, c, 3)
    _add_conv(sd, rng, "SPG_A_4", NUM_CLASSES, 512, 1)
    _add_spg_branches(sd, rng, 512, 512, 512, 512)
    return sd


def vgg_spg_reference(sd, x_nhwc, large):
    t, x, index = _t(sd), _nchw(x_nhwc), 0
    with torch.no_grad():
        for v in VGG_FEATURES:
            if v == "M":
                x = F.max_pool2d(x, 2, 2)
                index += 1
                continue
            x = F.relu(_conv(t, x, f"features.{index}", 1))
            index += 2
        for slot in (0, 2, 4):
            x = F.relu(_conv(t, x, f"SPG_A_1.{slot}", 1))
        if not large:
            x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        b1_in = x
        for slot in (0, 2, 4):
            x = F.relu(_conv(t, x, f"SPG_A_2.{slot}", 1))
        b2_in = x
        for slot in (0, 2):
            x = F.relu(_conv(t, x, f"SPG_A_3.{slot}", 1))
        return _branches(t, b1_in, b2_in, x, "SPG_A_4")


# ------------------------------------------------------------------ ResNet50 (ResNetSpg)
def resnet_spg_state_dict(seed=0):
    """torchvision-named random ResNet50 (test_resnet's), layer3 renamed as ResNetSpg splits it
    (block 0 -> SPG_A1.0, blocks 1-5 -> SPG_A2.0-4), no fc, the SPG modules added."""
    from test_resnet import _torch_state_dict

    sd = {}
    for name, value in _torch_state_dict("resnet50", num_classes=NUM_CLASSES, seed=seed).items():
        if name.startswith("fc."):
            continue
        if name.startswith("layer3."):
            _, block, rest = name.split(".", 2)
            j = int(block)
            name = f"SPG_A1.0.{rest}" if j == 0 else f"SPG_A2.{j - 1}.{rest}"
        sd[name] = value
    rng = _rng(seed + 1)
    _add_conv(sd, rng, "SPG_A4", NUM_CLASSES, 2048, 1)
    _add_spg_branches(sd, rng, 1024, 1024, 1024, 2048)
    return sd


def resnet_spg_reference(sd, x_nhwc):
    t = _t(sd)

    def bn(x, key):
        return F.batch_norm(x, t[f"{key}.running_mean"], t[f"{key}.running_var"],
                            t[f"{key}.weight"], t[f"{key}.bias"], training=False, eps=1e-5)

    def bottleneck(x, p, stride):
        out = F.relu(bn(_conv(t, x, f"{p}.conv1"), f"{p}.bn1"))
        out = F.relu(bn(_conv(t, out, f"{p}.conv2", 1, stride), f"{p}.bn2"))
        out = bn(_conv(t, out, f"{p}.conv3"), f"{p}.bn3")
        if f"{p}.downsample.0.weight" in t:
            x = bn(_conv(t, x, f"{p}.downsample.0", 0, stride), f"{p}.downsample.1")
        return F.relu(out + x)

    with torch.no_grad():
        x = F.max_pool2d(F.relu(bn(_conv(t, _nchw(x_nhwc), "conv1", 3, 2), "bn1")), 3, 2, 1)
        for j in range(3):
            x = bottleneck(x, f"layer1.{j}", 1)
        for j in range(4):
            x = bottleneck(x, f"layer2.{j}", 2 if j == 0 else 1)
        x = bottleneck(x, "SPG_A1.0", 2)
        b1_in = x
        for j in range(5):
            x = bottleneck(x, f"SPG_A2.{j}", 1)
        b2_in = x
        for j in range(3):
            x = bottleneck(x, f"layer4.{j}", 1)
        return _branches(t, b1_in, b2_in, x, "SPG_A4")


# ------------------------------------------------------------------ InceptionV3 (InceptionSpg)
def inception_spg_state_dict(seed=0):
    """torchvision's names up to Mixed_6e (test_inception's description), then InceptionSpg's
    SPG_A3_1b.0 (768 -> 1024), SPG_A3_2b.0 (1024 -> 1024), SPG_A4 (1x1 -> classes), SPG_B_1a
    (288 -> 512), SPG_B_2a (768 -> 512), SPG_B_shared (512), SPG_C (1024 -> 512 -> 1)."""
    from test_inception import REMOVED, random_state_dict

    sd = {k: np.array(v) for k, v in random_state_dict(seed).items() if not k.startswith(REMOVED)}
    rng = _rng(seed + 1)
    _add_conv(sd, rng, "SPG_A3_1b.0", 1024, 768, 3)
    _add_conv(sd, rng, "SPG_A3_2b.0", 1024, 1024, 3)
    _add_conv(sd, rng, "SPG_A4", NUM_CLASSES, 1024, 1)
    _add_spg_branches(sd, rng, 288, 768, 512, 1024)
    return sd


def inception_spg_reference(sd, x_nhwc, large=False):
    t = _t(sd)

    def basic(x, name, padding=0, stride=1):
        x = F.conv2d(x, t[f"{name}.conv.weight"], None, stride, padding)
        return F.relu(F.batch_norm(x, t[f"{name}.bn.running_mean"], t[f"{name}.bn.running_var"],
                                   t[f"{name}.bn.weight"], t[f"{name}.bn.bias"], training=False,
                                   eps=0.001))

    def chain(x, p, specs):
        for name, padding in specs:
            x = basic(x, f"{p}.{name}", padding)
        return x

    def avg_branch(x, p):
        return basic(F.avg_pool2d(x, 3, stride=1, padding=1), f"{p}.branch_pool")

    def mixed_a(x, p):
        return torch.cat([basic(x, f"{p}.branch1x1"),
                          chain(x, p, (("branch5x5_1", 0), ("branch5x5_2", 2))),
                          chain(x, p, (("branch3x3dbl_1", 0), ("branch3x3dbl_2", 1),
                                       ("branch3x3dbl_3", 1))),
                          avg_branch(x, p)], 1)

    def mixed_b(x, p):  # InceptionB(288, kernel_size=3, stride=1, padding=1)
        return torch.cat([basic(x, f"{p}.branch3x3", 1),
                          chain(x, p, (("branch3x3dbl_1", 0), ("branch3x3dbl_2", 1),
                                       ("branch3x3dbl_3", 1))),
                          F.max_pool2d(x, 3, stride=1, padding=1)], 1)

    def mixed_c(x, p):
        row, col = (0, 3), (3, 0)  # paddings of the 1x7 and 7x1 convs
        return torch.cat([basic(x, f"{p}.branch1x1"),
                          chain(x, p, (("branch7x7_1", 0), ("branch7x7_2", row),
                                       ("branch7x7_3", col))),
                          chain(x, p, (("branch7x7dbl_1", 0), ("branch7x7dbl_2", col),
                                       ("branch7x7dbl_3", row), ("branch7x7dbl_4", col),
                                       ("branch7x7dbl_5", row))),
                          avg_branch(x, p)], 1)

    with torch.no_grad():
        x = basic(_nchw(x_nhwc), "Conv2d_1a_3x3", 1, 2)
        x = basic(x, "Conv2d_2a_3x3")
        x = basic(x, "Conv2d_2b_3x3", 1)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = basic(x, "Conv2d_3b_1x1")
        x = basic(x, "Conv2d_4a_3x3")
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        for p in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = mixed_a(x, p)
        if not large:
            x = F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)
        b1_in = x
        x = mixed_b(x, "Mixed_6a")
        for p in ("Mixed_6b", "Mixed_6c", "Mixed_6d"):
            x = mixed_c(x, p)
        b2_in = x  # InceptionSpg's SPG_B_2a reads x, the input of Mixed_6e
        x = mixed_c(x, "Mixed_6e")
        x = F.relu(_conv(t, x, "SPG_A3_1b.0", 1))
        x = F.relu(_conv(t, x, "SPG_A3_2b.0", 1))  # dropout: identity in evaluation
        return _branches(t, b1_in, b2_in, x, "SPG_A4")


# ------------------------------------------------------------------ the comparison
def spg_cfg(backbone, **model):
    c = base_config()
    c.model.backbone = backbone
    c.data.num_classes = NUM_CLASSES
    c.model.inserts = tuple((stage, "spg") for stage in BENCHMARK_STAGES[backbone])
    c.model.methods.spg = dict(BENCHMARK_HPARAMS[backbone])
    for key, value in model.items():
        c.model[key] = value
    return c


def _close(ours, ref, what):
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
    err = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    print(f"{what}: max|ref| {scale:.3g}, max error {err:.2e}")
    assert err <= TOL * scale, what
    assert np.abs(ref).std() > 1e-6, what  # nothing vanished


def _check(tmp_path, arch, cfg, sd, x, ref):
    read = load_state_dict(_checkpoint_file(tmp_path, arch, sd))
    assert sorted(read) == sorted(sd)
    model, variables, report = _convert(cfg, read, x)
    assert not report.new_layers and not report.unused and not report.missing
    out = _jit(lambda v, im: model.apply(v, im, train=False))(variables, x)
    _close(out["logits"], ref["logits"], f"{arch} logits")
    _close(out["cams"], ref["maps"], f"{arch} CAMs")  # feat_map[range(B), labels], every class
    labels = np.array([[4], [1]])
    picked = _jit(lambda v, im, c: model.apply(v, im, train=False, cam_classes=c))(
        variables, x, labels)
    _close(picked["cams"], np.take_along_axis(ref["maps"], labels[:, None, None, :], -1),
           f"{arch} CAMs of given classes")
    branches, _ = _jit(lambda v, im: spg_apply(model, v, im, train=False))(variables, x)
    for key in ("logits_b1", "logits_b2", "logits_c"):
        _close(branches[key], ref[key], f"{arch} {key}")
    return report


@pytest.mark.parametrize("large", [False, True])
def test_vgg16_spg_checkpoint_computes_the_reference(tmp_path, large):
    sd = vgg_spg_state_dict()
    x = _rng(1).standard_normal((2, 48, 48, 3)).astype(np.float32)
    report = _check(tmp_path, "vgg16", spg_cfg("vgg16_gap", large_feature_map=large), sd, x,
                    vgg_spg_reference(sd, x, large))
    assert len(report.loaded) == len(sd)


def test_resnet50_spg_checkpoint_computes_the_reference(tmp_path):
    sd = resnet_spg_state_dict()
    x = _rng(2).standard_normal((2, 64, 64, 3)).astype(np.float32)
    _check(tmp_path, "resnet50", spg_cfg("resnet50"), sd, x, resnet_spg_reference(sd, x))


def test_inception_v3_spg_checkpoint_computes_the_reference(tmp_path):
    sd = inception_spg_state_dict()
    x = _rng(3).standard_normal((2, 64, 64, 3)).astype(np.float32)
    _check(tmp_path, "inception_v3", spg_cfg("inception_v3"), sd, x,
           inception_spg_reference(sd, x))


# ------------------------------------------------------------------ names and refusals
def test_module_names_by_hand():
    vgg = torch_name_for(spg_cfg("vgg16_gap"), "wsolevaluation")
    expected = {("backbone", "conv1_1"): "features.0", ("backbone", "conv3_3"): "features.14",
                ("backbone", "conv4_1"): "SPG_A_1.0", ("backbone", "conv4_3"): "SPG_A_1.4",
                ("backbone", "conv5_2"): "SPG_A_2.2", ("backbone", "pool4_insert0", "conv"):
                "SPG_B_1a.0", ("backbone", "conv5_3_insert1", "conv"): "SPG_B_2a.0",
                ("head", "a3_0"): "SPG_A_3.0", ("head", "a3_1"): "SPG_A_3.2",
                ("head", "classes"): "SPG_A_4", ("head", "b_shared", "conv"): "SPG_B_shared.0",
                ("head", "b_shared", "score"): "SPG_B_shared.2", ("head", "c", "conv"):
                "SPG_C.0", ("head", "c", "score"): "SPG_C.2"}
    assert {p: vgg(p) for p in expected} == expected
    resnet = torch_name_for(spg_cfg("resnet50"), "wsolevaluation")
    expected = {("backbone", "layer3_0", "downsample", "conv"): "SPG_A1.0.downsample.0",
                ("backbone", "layer3_0", "conv2", "bn"): "SPG_A1.0.bn2",
                ("backbone", "layer3_1", "conv1", "conv"): "SPG_A2.0.conv1",
                ("backbone", "layer3_5", "conv3", "bn"): "SPG_A2.4.bn3",
                ("backbone", "layer2_3", "conv3", "conv"): "layer2.3.conv3",
                ("backbone", "layer4_0", "downsample", "bn"): "layer4.0.downsample.1",
                ("backbone", "layer3_0_insert0", "conv"): "SPG_B_1a.0",
                ("backbone", "layer3_insert1", "conv"): "SPG_B_2a.0",
                ("head", "classes"): "SPG_A4", ("head", "a3_0"): None}
    assert {p: resnet(p) for p in expected} == expected
    inception = torch_name_for(spg_cfg("inception_v3"), "wsolevaluation")
    expected = {("backbone", "Mixed_6e", "branch_pool", "conv"): "Mixed_6e.branch_pool.conv",
                ("backbone", "extra_pool_insert0", "conv"): "SPG_B_1a.0",
                ("backbone", "Mixed_6d_insert1", "conv"): "SPG_B_2a.0",
                ("head", "a3_0"): "SPG_A3_1b.0", ("head", "a3_1"): "SPG_A3_2b.0",
                ("head", "classes"): "SPG_A4"}
    assert {p: inception(p) for p in expected} == expected


def test_other_placements_and_layers_are_refused():
    moved = spg_cfg("vgg16_gap", inserts=(("pool3", "spg"), ("conv5_3", "spg")))
    with pytest.raises(WeightError, match=r"after \('pool4', 'conv5_3'\).*\('pool3', 'conv5_3'\)"):
        torch_name_for(moved, "wsolevaluation")
    with_adl = spg_cfg("resnet50", inserts=(("layer3_0", "spg"), ("layer3", "spg"),
                                            ("layer4", "adl")))
    with pytest.raises(WeightError, match="adl"):
        torch_name_for(with_adl, "wsolevaluation")
    # The reversed listing is the same model: the taps are named in the stages' order.
    flipped = spg_cfg("resnet50", inserts=(("layer3", "spg"), ("layer3_0", "spg")))
    name = torch_name_for(flipped, "wsolevaluation")
    assert name(("backbone", "layer3_insert0", "conv")) == "SPG_B_2a.0"
    assert name(("backbone", "layer3_0_insert1", "conv")) == "SPG_B_1a.0"


def test_a_checkpoint_of_another_head_is_refused():
    # VGG16's checkpoint into a config without SPG_A_3's convs: its SPG_A_3 tensors are unused.
    sd = vgg_spg_state_dict()
    cfg = spg_cfg("vgg16_gap")
    cfg.model.methods.spg = {**BENCHMARK_HPARAMS["vgg16_gap"], "a3_features": ()}
    with pytest.raises(WeightError, match=r"unused tensor in the file: SPG_A_3\.0\.weight"):
        _convert(cfg, sd, np.zeros((1, 32, 32, 3), np.float32))


# ------------------------------------------------------------------ configs/wsolevaluation.py
# Typed from the benchmark: where VggSpg / ResNetSpg / InceptionSpg read B1 and B2, their widths,
# and main.py's `_FEATURE_PARAM_LAYER_PATTERNS` (which parameters train at the base rate).
BENCHMARK_MODELS = {
    "vgg16": ("vgg16_gap", ("pool4", "conv5_3"),
              {"b_features": 512, "c_features": 512, "a3_features": (512, 512), "dropout": 0.0}),
    "resnet50": ("resnet50", ("layer3_0", "layer3"),
                 {"b_features": 1024, "c_features": 512, "a3_features": (), "dropout": 0.0}),
    "inception_v3": ("inception_v3", ("extra_pool", "Mixed_6d"),
                     {"b_features": 512, "c_features": 512, "a3_features": (1024, 1024),
                      "dropout": 0.5}),
}
FEATURE_PATTERNS = {"vgg16": ["features."], "resnet50": ["layer4.", "fc."],
                    "inception_v3": ["Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"]}


@pytest.mark.parametrize("arch", sorted(BENCHMARK_MODELS))
def test_the_wsolevaluation_config_is_the_benchmarks_spg(arch):
    from wsolax.config import load_config
    from wsolax.models.wsol_model import init_key
    from wsolax.training.optim import param_groups

    backbone, stages, hparams = BENCHMARK_MODELS[arch]
    cfg = load_config(f"configs/wsolevaluation.py:cub,spg,{arch}",
                      [f"--config.data.num_classes={NUM_CLASSES}"])
    assert cfg.model.backbone == backbone
    assert tuple(map(tuple, cfg.model.inserts)) == tuple((s, "spg") for s in stages)
    assert {k: cfg.model.methods.spg[k] for k in hparams} == hparams
    # main.py's parameter groups: on VGG16 / InceptionV3 a name matching a pattern is a feature
    # (base rate), every other one a classifier (x lr_classifier_ratio); on ResNet50 the reverse.
    model = build_model(cfg)
    size = 64 if arch == "inception_v3" else 32
    params = jax.eval_shape(lambda k: model.init({"params": k, "dropout": k},
                                                 np.zeros((1, size, size, 3), np.float32),
                                                 train=False), init_key(0))["params"]
    groups = param_groups(params, tuple(cfg.optim.new_layer_prefixes))
    name_of = torch_name_for(cfg, "wsolevaluation")
    checked = 0
    for path, group in jax.tree_util.tree_flatten_with_path(groups)[0]:
        keys = tuple(str(getattr(k, "key", k)) for k in path)
        tname = name_of(keys[:-1])
        assert tname is not None, keys
        matches = any(p in tname for p in FEATURE_PATTERNS[arch])
        fast = matches if arch == "resnet50" else not matches
        assert group == ("new" if fast else "backbone"), (keys, tname)
        checked += 1
    assert checked == len(jax.tree.leaves(params))
