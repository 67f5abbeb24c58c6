"""ResNet backbones: numerical parity with an independent torch.nn.functional reference.

The reference side never looks at the Flax model: `_torch_state_dict` builds a state dict with
torchvision/timm names from the small architecture table below, and `_torch_forward` runs it with
torch.nn.functional only (WSOL strides: layer4 stride 1, layer3 stride 1 with a large feature map).
The Flax side builds the model from a config, converts the dict with the library's converter and
must reproduce features and logits to 1e-4.

Compile time is what these tests cost on XLA:CPU, so inputs are tiny (64 px, 32 px for ResNet101),
the Flax forwards are compiled with LLVM optimisation off (measured ~2.5x faster to compile for the
deep nets; each compiled forward runs once), and shape-only checks use `jax.eval_shape`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import traverse_util

from backbone_testing import backbone_config, torch_one_thread  # noqa: F401  (autouse fixture)
from wsolax import registry
from wsolax.methods.api import layer_method
from wsolax.models import resnet
from wsolax.registry import build_model
from wsolax.weights import convert_torch_state_dict

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics

# name -> (block kind, blocks per stage, squeeze-excitation): torchvision resnet18/34/50/101 and
# timm seresnet50. Channel facts: stem 64; stage widths 64, 128, 256, 512; bottleneck expansion 4;
# SE reduction 16 (timm rounds C/16 to a multiple of 8, which C/16 already is for C = 256..2048).
ARCH = {
    "resnet18": ("basic", (2, 2, 2, 2), False),
    "resnet34": ("basic", (3, 4, 6, 3), False),
    "resnet50": ("bottleneck", (3, 4, 6, 3), False),
    "resnet101": ("bottleneck", (3, 4, 23, 3), False),
    "se_resnet50": ("bottleneck", (3, 4, 6, 3), True),
}
NUM_CLASSES = 1000
TOL = 1e-4
# Compile the run-once test forwards without LLVM optimisation (ResNet101: ~33 s -> ~13 s here).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


# ----------------------------------------------------------------------------------------------
# Independent torch-layout description and reference forward
# ----------------------------------------------------------------------------------------------

def _block_plan(name: str, large: bool):
    """[(prefix, in_ch, planes, stride)] for every block, the WSOL strides (1, 2, 2|1, 1)."""
    kind, blocks, _ = ARCH[name]
    expansion = 4 if kind == "bottleneck" else 1
    strides = (1, 2, 1 if large else 2, 1)
    plan, in_ch = [], 64
    for i, (n, planes, stride) in enumerate(zip(blocks, (64, 128, 256, 512), strides), start=1):
        for j in range(n):
            plan.append((f"layer{i}.{j}", in_ch, planes, stride if j == 0 else 1))
            in_ch = planes * expansion
    return plan, in_ch


def _torch_state_dict(name: str, *, large: bool = False, num_classes: int = NUM_CLASSES,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights named and shaped as torchvision (timm for SE) would store them.

    He-normal convs, BN with random affine and running statistics; the last BN of each residual
    branch gets a small scale (like zero_init_last) so a 101-layer net's activations stay O(1).
    """
    rng = np.random.default_rng(seed)
    kind, _, se = ARCH[name]
    sd: dict[str, np.ndarray] = {}

    def conv(key, cout, cin, k, bias=False):
        sd[f"{key}.weight"] = rng.normal(0, np.sqrt(2.0 / (cin * k * k)),
                                         (cout, cin, k, k)).astype(np.float32)
        if bias:
            sd[f"{key}.bias"] = rng.normal(0, 0.1, cout).astype(np.float32)

    def bn(key, c, scale=(0.5, 1.5)):
        sd[f"{key}.weight"] = rng.uniform(*scale, c).astype(np.float32)
        sd[f"{key}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{key}.running_mean"] = rng.normal(0, 0.2, c).astype(np.float32)
        sd[f"{key}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        sd[f"{key}.num_batches_tracked"] = np.array(rng.integers(0, 1000), np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    plan, out_ch = _block_plan(name, large)
    last_scale = (0.1, 0.3)
    for p, cin, planes, stride in plan:
        if kind == "basic":
            cout = planes
            conv(f"{p}.conv1", planes, cin, 3)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes, last_scale)
        else:
            cout = planes * 4
            conv(f"{p}.conv1", planes, cin, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", cout, planes, 1)
            bn(f"{p}.bn3", cout, last_scale)
        if se:
            conv(f"{p}.se.fc1", cout // 16, cout, 1, bias=True)
            conv(f"{p}.se.fc2", cout, cout // 16, 1, bias=True)
        if stride != 1 or cin != cout:
            conv(f"{p}.downsample.0", cout, cin, 1)
            bn(f"{p}.downsample.1", cout)
    sd["fc.weight"] = rng.normal(0, 1 / np.sqrt(out_ch), (num_classes, out_ch)).astype(np.float32)
    sd["fc.bias"] = rng.normal(0, 0.1, num_classes).astype(np.float32)
    return sd


def _torch_forward(sd: dict[str, np.ndarray], name: str, x_nhwc: np.ndarray, *, large: bool):
    """(features NHWC, logits) with torch.nn.functional, eval-mode BatchNorm."""
    t = {k: torch.from_numpy(v) for k, v in sd.items()}
    kind, _, se = ARCH[name]

    def bn(x, key):
        return F.batch_norm(x, t[f"{key}.running_mean"], t[f"{key}.running_var"],
                            t[f"{key}.weight"], t[f"{key}.bias"], training=False, eps=1e-5)

    def conv(x, key, stride=1, padding=0):
        return F.conv2d(x, t[f"{key}.weight"], t.get(f"{key}.bias"), stride=stride,
                        padding=padding)

    with torch.no_grad():
        x = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())
        x = F.max_pool2d(F.relu(bn(conv(x, "conv1", 2, 3), "bn1")), 3, 2, 1)
        plan, _ = _block_plan(name, large)
        for p, _, _, stride in plan:
            if kind == "basic":
                out = F.relu(bn(conv(x, f"{p}.conv1", stride, 1), f"{p}.bn1"))
                out = bn(conv(out, f"{p}.conv2", 1, 1), f"{p}.bn2")
            else:
                out = F.relu(bn(conv(x, f"{p}.conv1"), f"{p}.bn1"))
                out = F.relu(bn(conv(out, f"{p}.conv2", stride, 1), f"{p}.bn2"))
                out = bn(conv(out, f"{p}.conv3"), f"{p}.bn3")
            if se:
                s = F.adaptive_avg_pool2d(out, 1)
                s = torch.sigmoid(conv(F.relu(conv(s, f"{p}.se.fc1")), f"{p}.se.fc2"))
                out = out * s
            shortcut = x
            if f"{p}.downsample.0.weight" in t:
                shortcut = bn(conv(x, f"{p}.downsample.0", stride), f"{p}.downsample.1")
            x = F.relu(out + shortcut)
        logits = F.linear(F.adaptive_avg_pool2d(x, 1).flatten(1), t["fc.weight"], t["fc.bias"])
    return x.permute(0, 2, 3, 1).numpy(), logits.numpy()


# ----------------------------------------------------------------------------------------------
# Flax side
# ----------------------------------------------------------------------------------------------

def _cfg(name: str, **model):
    return backbone_config(name, model.pop("num_classes", NUM_CLASSES), **model)


def _template(model, size: int, batch: int = 1):
    """The model's variable tree as zeros, shapes from `model.init` (traced, not compiled)."""
    shapes = jax.eval_shape(lambda k: model.init(k, jnp.zeros((batch, size, size, 3)), train=False),
                            jax.random.key(0))
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _image(size: int, batch: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (batch, size, size, 3)).astype(np.float32)


PARITY = [  # (backbone, large_feature_map, input px, expected map side)
    ("resnet18", False, 64, 4),
    ("resnet34", False, 64, 4),
    ("resnet50", False, 64, 4),
    ("resnet101", False, 32, 2),
    ("se_resnet50", False, 64, 4),
    ("resnet18", True, 64, 8),
]


@pytest.mark.parametrize("name,large,size,side", PARITY,
                         ids=[f"{n}{'-large' if lg else ''}" for n, lg, _, _ in PARITY])
@pytest.mark.slow
def test_matches_torch_reference(name, large, size, side):
    sd = _torch_state_dict(name, large=large)
    x = _image(size)
    ref_features, ref_logits = _torch_forward(sd, name, x, large=large)
    assert ref_features.shape[1:3] == (side, side)

    model = build_model(_cfg(name, large_feature_map=large))
    variables, report = convert_torch_state_dict(sd, _template(model, size), resnet.torch_name)
    assert not report.missing and not report.unused and not report.skipped
    assert not report.new_layers
    assert sorted(report.ignored) == sorted(k for k in sd if k.endswith(".num_batches_tracked"))
    assert len(report.loaded) == len(sd) - len(report.ignored)

    out = _jit(lambda v, im: model.apply(v, im, train=False))(variables, x)
    features, logits = np.asarray(out["features"]), np.asarray(out["logits"])
    assert features.shape == ref_features.shape  # (1, side, side, C) NHWC
    err_f = float(np.abs(features - ref_features).max())
    err_l = float(np.abs(logits - ref_logits).max())
    print(f"\n{name}{' large' if large else ''}: max|features| {np.abs(ref_features).max():.3g}"
          f" max|logits| {np.abs(ref_logits).max():.3g}; max abs error features {err_f:.2e},"
          f" logits {err_l:.2e}")
    assert err_f <= TOL and err_l <= TOL


def _shapes(model, size: int, dtype=jnp.float32):
    """(variable shapes, output shapes) of `model.init_with_output`, traced once, not compiled."""
    x = jnp.zeros((1, size, size, 3), dtype)
    out, variables = jax.eval_shape(
        lambda k: model.init_with_output(k, x, train=False), jax.random.key(0))
    return variables, out


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_wsol_feature_map_is_stride_16_or_8(name):
    # 224 px -> 14x14 (layer4 stride 1), 28x28 with a large feature map (layer3 stride 1 too).
    # (Every depth's map size is also checked on small inputs by the parity test.)
    channels = 512 if ARCH[name][0] == "basic" else 2048
    for large, side in ((False, 14), (True, 28)):
        _, out = _shapes(build_model(_cfg(name, large_feature_map=large)), 224)
        assert out["features"].shape == (1, side, side, channels)
        assert out["cams"].shape == (1, side, side, NUM_CLASSES)


def test_layer4_first_block_keeps_its_projection_at_stride_1():
    sd = _torch_state_dict("resnet18")
    assert sd["layer4.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    model = build_model(_cfg("resnet18"))
    t = _template(model, 32)
    assert t["params"]["backbone"]["layer4_0"]["downsample"]["conv"]["kernel"].shape == (1, 1, 256,
                                                                                          512)
    assert "downsample" not in t["params"]["backbone"]["layer1_0"]  # 64 -> 64, stride 1
    assert "downsample" not in t["params"]["backbone"]["layer4_1"]


def test_torch_names():
    tn = resnet.torch_name
    assert tn(("backbone", "conv1", "conv")) == "conv1"
    assert tn(("backbone", "conv1", "bn")) == "bn1"
    assert tn(("backbone", "layer1_0", "conv1", "conv")) == "layer1.0.conv1"
    assert tn(("backbone", "layer1_0", "conv1", "bn")) == "layer1.0.bn1"
    assert tn(("backbone", "layer3_22", "conv3", "bn")) == "layer3.22.bn3"
    assert tn(("backbone", "layer4_0", "downsample", "conv")) == "layer4.0.downsample.0"
    assert tn(("backbone", "layer4_0", "downsample", "bn")) == "layer4.0.downsample.1"
    assert tn(("backbone", "layer2_3", "se", "fc1")) == "layer2.3.se.fc1"
    assert tn(("backbone", "layer2_3", "se", "fc2")) == "layer2.3.se.fc2"
    assert tn(("head", "classifier")) == "fc"
    assert tn(("backbone", "layer3_0_insert0")) is None
    assert tn(("backbone", "layer3_0_insert0", "conv1", "conv")) is None


class _Probe(nn.Module):
    """An inserted layer with parameters (a 1x1 conv named like a torch layer, to tempt a clash)."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train):
        return x + nn.Conv(x.shape[-1], (1, 1), dtype=self.dtype, name="conv1")(x)


def test_inserted_layers_are_new_layers(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "probe", layer_method("probe", _Probe))
    sd = _torch_state_dict("resnet50")
    # ADL (parameter-free) at layer3's first block plus a parametrised probe at layer4's end.
    model = build_model(_cfg("resnet50", inserts=(("layer3_0", "adl"), ("layer4", "probe"))))
    template = _template(model, 32)
    assert resnet.torch_name(("backbone", "layer3_0_insert0")) is None
    _, report = convert_torch_state_dict(sd, template, resnet.torch_name)
    assert sorted(report.new_layers) == ["params/backbone/layer4_insert1/conv1/bias",
                                         "params/backbone/layer4_insert1/conv1/kernel"]
    assert not report.missing and not report.unused and not report.skipped


def test_classifier_with_other_class_count_is_skipped():
    sd = _torch_state_dict("resnet18")  # fc 1000
    model = build_model(_cfg("resnet18", num_classes=10))
    template = _template(model, 32)
    variables, report = convert_torch_state_dict(sd, template, resnet.torch_name)
    assert sorted(s.split(" <-")[0] for s in report.skipped) == [
        "params/head/classifier/bias", "params/head/classifier/kernel"]
    assert variables["params"]["head"]["classifier"]["kernel"].shape == (512, 10)
    assert not report.missing and not report.unused and not report.new_layers


@pytest.mark.parametrize("frozen", [False, True])
def test_batch_statistics_update_only_when_not_frozen(frozen):
    sd = _torch_state_dict("resnet18", num_classes=10)
    model = build_model(_cfg("resnet18", num_classes=10, bn_frozen=frozen))
    variables, _ = convert_torch_state_dict(sd, _template(model, 32, 2), resnet.torch_name)
    x = _image(32, 2)

    @_jit
    def train_and_eval(v, im):
        out, updates = model.apply(v, im, train=True, mutable=["batch_stats"])
        # eval-mode output only where it is compared (frozen BN: training == evaluation)
        evaluated = model.apply(v, im, train=False)["features"] if frozen else None
        return out["features"], updates["batch_stats"], evaluated

    train_feats, new_stats, eval_feats = train_and_eval(variables, x)
    old = traverse_util.flatten_dict(variables["batch_stats"])
    new = traverse_util.flatten_dict(jax.device_get(new_stats))
    assert old.keys() == new.keys() and len(old) == 2 * 20  # 20 BNs in ResNet18, mean and var
    changed = [k for k in old if not np.array_equal(old[k], new[k])]
    if frozen:
        assert not changed
        np.testing.assert_allclose(train_feats, eval_feats, rtol=1e-5, atol=1e-5)
    else:
        assert sorted(changed) == sorted(old)
        # torch's momentum 0.1: running mean <- 0.9 running mean + 0.1 batch mean (stem BN).
        with torch.no_grad():
            conv1 = F.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                             torch.from_numpy(sd["conv1.weight"]), stride=2, padding=3)
        expected = 0.9 * sd["bn1.running_mean"] + 0.1 * conv1.mean((0, 2, 3)).numpy()
        np.testing.assert_allclose(new[("backbone", "conv1", "bn", "mean")], expected,
                                   rtol=1e-5, atol=1e-5)


class _Record(nn.Module):
    """Inserted layer that records (its name, input shape) while being traced."""

    dtype: jnp.dtype = jnp.float32
    log = []

    @nn.compact
    def __call__(self, x, *, train):
        _Record.log.append((self.name.rsplit("_insert", 1)[0], x.shape))
        return x


def test_stage_order_and_shapes(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "record", layer_method("record", _Record))
    monkeypatch.setattr(_Record, "log", [])
    stages = resnet.STAGES["resnet50"]
    assert stages[0] == "stem" and {"layer3_0", "layer4_0", "layer4"} <= set(stages)
    assert len(stages) == 1 + 16 + 4
    # Configure in reverse order: each stage still runs at its point in the forward pass, and a
    # stage end ("layer4") after its last block ("layer4_2").
    model = build_model(_cfg("resnet50", inserts=tuple((s, "record") for s in reversed(stages))))
    _template(model, 224)
    names = [n for n, _ in _Record.log[:len(stages)]]
    assert names == list(stages)
    shapes = dict(_Record.log)
    assert shapes["stem"] == (1, 56, 56, 64)
    assert shapes["layer1"] == (1, 56, 56, 256)
    assert shapes["layer2_0"] == (1, 28, 28, 512)
    assert shapes["layer3_0"] == (1, 14, 14, 1024)
    assert shapes["layer4_0"] == shapes["layer4"] == (1, 14, 14, 2048)


@pytest.mark.parametrize("stage", ["layer5", "layer3_6", "conv5_3"])
def test_unknown_stage_is_named(stage):
    model = build_model(_cfg("resnet50", inserts=((stage, "adl"),)))
    with pytest.raises(ValueError, match=f"backbone 'resnet50' has no stage named '{stage}'"):
        _template(model, 32)


def test_resnet101_stage_names_cover_its_23_blocks():
    stages = resnet.STAGES["resnet101"]
    assert "layer3_22" in stages and "layer3_23" not in stages
    assert "layer3_6" not in resnet.STAGES["resnet50"]


def test_bfloat16_compute_keeps_float32_params():
    variables, out = _shapes(build_model(_cfg("se_resnet50", dtype="bfloat16")), 32)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
    assert out["features"].dtype == jnp.bfloat16
    assert out["logits"].dtype == jnp.float32
