"""MobileNetV1 (WSOL, last stride removed): numerical parity with an independent
torch.nn.functional reference on a timm `mobilenetv1_100` state dict (random weights), plus sizes,
stages, BatchNorm modes and weight names."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backbone_testing import backbone_config, batchnorm_modes, numpy_variables, torch_one_thread  # noqa: F401  (autouse fixture)

from wsolax.models import mobilenet
from wsolax.registry import backbone_module, build_model
from wsolax.models.wsol_model import init_key
from wsolax.weights import convert_torch_state_dict

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics

EPS = 1e-5
# timm mobilenetv1_100: stages of depthwise-separable blocks, (out channels, first stride, repeats)
TIMM_STAGES = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 2, 6), (1024, 2, 2)]


def timm_blocks():
    """[(timm prefix, in, out, stride)] of the 13 blocks in forward order."""
    out, cin = [], 32
    for s, (cout, stride, repeats) in enumerate(TIMM_STAGES):
        for j in range(repeats):
            out.append((f"blocks.{s}.{j}", cin, cout, stride if j == 0 else 1))
            cin = cout
    return out


def bn(name, c):
    return [(f"{name}.{leaf}", (c,)) for leaf in ("weight", "bias", "running_mean", "running_var")
            ] + [(f"{name}.num_batches_tracked", ())]


def timm_spec():
    spec = [("conv_stem.weight", (32, 3, 3, 3))] + bn("bn1", 32)
    for p, cin, cout, _ in timm_blocks():
        spec += [(f"{p}.conv_dw.weight", (cin, 1, 3, 3))] + bn(f"{p}.bn1", cin)
        spec += [(f"{p}.conv_pw.weight", (cout, cin, 1, 1))] + bn(f"{p}.bn2", cout)
    return spec + [("classifier.weight", (1000, 1024)), ("classifier.bias", (1000,))]


def random_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    sd = {}
    for name, shape in timm_spec():
        if name.endswith("num_batches_tracked"):
            sd[name] = np.array(1000, np.int64)
        elif name.endswith(("conv_stem.weight", "conv_dw.weight", "conv_pw.weight")):
            sd[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
                        ).astype(np.float32)
        elif name == "classifier.weight":
            sd[name] = (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
        elif name.endswith(("bn1.weight", "bn2.weight", "running_var")):
            sd[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            sd[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return sd


def reference_forward(sd, x_nchw, large):
    """MobileNetV1 with torch.nn.functional: ReLU6, no skips, stride of blocks.4.0 (and of
    blocks.3.0 when large) set to 1; GAP and timm's classifier."""
    t = lambda k: torch.from_numpy(sd[k])  # noqa: E731

    def bn_relu6(x, name):
        return F.relu6(F.batch_norm(x, t(f"{name}.running_mean"), t(f"{name}.running_var"),
                                    t(f"{name}.weight"), t(f"{name}.bias"), training=False,
                                    eps=EPS))

    x = bn_relu6(F.conv2d(torch.from_numpy(x_nchw), t("conv_stem.weight"), stride=2, padding=1),
                 "bn1")
    for p, cin, _, stride in timm_blocks():
        if p == "blocks.4.0" or (large and p == "blocks.3.0"):
            stride = 1
        x = bn_relu6(F.conv2d(x, t(f"{p}.conv_dw.weight"), stride=stride, padding=1, groups=cin),
                     f"{p}.bn1")
        x = bn_relu6(F.conv2d(x, t(f"{p}.conv_pw.weight")), f"{p}.bn2")
    logits = F.linear(x.mean(dim=(2, 3)), t("classifier.weight"), t("classifier.bias"))
    return x.numpy(), logits.numpy()



def _cfg(num_classes=1000, **model):
    return backbone_config("mobilenet_v1", num_classes, **model)



@pytest.fixture(scope="module")
def state_dict():
    return random_state_dict()


X = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def converted(state_dict):
    """Converted variables and report; the tree is the same for every variant (large, frozen)."""
    model = build_model(_cfg())
    return convert_torch_state_dict(state_dict, numpy_variables(model, X),
                                    backbone_module("mobilenet_v1").torch_name)


@pytest.mark.parametrize("large", [False, True])
def test_parity_with_torch_reference(state_dict, converted, large):
    # 64 px: stem 32, block1 16, block3 8, block5 4 (8 if large), block11 keeps it: 4x4 (8x8).
    model = build_model(_cfg(large_feature_map=large))
    variables, report = converted
    spec = dict(timm_spec())
    assert report.missing == report.skipped == report.unused == report.new_layers == []
    assert sorted(report.ignored) == sorted(k for k in spec if k.endswith("num_batches_tracked"))
    assert sorted(t for _, t in report.loaded) == sorted(set(spec) - set(report.ignored))

    out = jax.jit(lambda v: model.apply(v, X, train=False))(variables)
    ref_feat, ref_logits = reference_forward(state_dict, X.transpose(0, 3, 1, 2), large)
    feat = np.asarray(out["features"]).transpose(0, 3, 1, 2)
    side = 8 if large else 4
    assert feat.shape == ref_feat.shape == (2, 1024, side, side)
    feat_err = float(np.abs(feat - ref_feat).max())
    logit_err = float(np.abs(np.asarray(out["logits"]) - ref_logits).max())
    print(f"mobilenet_v1 large={large}: max|features err|={feat_err:.2e} "
          f"max|logits err|={logit_err:.2e} (feature scale {np.abs(ref_feat).max():.2f})")
    assert feat_err <= 1e-4 and logit_err <= 1e-4
    assert np.abs(ref_feat).max() > 0.1


def test_classifier_with_other_class_count_is_skipped(state_dict):
    model = build_model(_cfg(num_classes=5))
    _, report = convert_torch_state_dict(state_dict, numpy_variables(model, X[:1, :32, :32]),
                                         mobilenet.torch_name)
    assert [s.split(" ")[0] for s in report.skipped] == ["params/head/classifier/bias",
                                                         "params/head/classifier/kernel"]
    assert report.missing == report.unused == report.new_layers == []


@pytest.mark.parametrize("large,side", [(False, 14), (True, 28)])
def test_feature_map_size_at_224(large, side):
    model = build_model(_cfg(large_feature_map=large))
    out, _ = jax.eval_shape(
        lambda k: model.init_with_output(k, jnp.zeros((1, 224, 224, 3)), train=False), init_key(0))
    assert out["features"].shape == (1, side, side, 1024)



@pytest.mark.parametrize("frozen", [False, True])
def test_batchnorm_statistics_update_unless_frozen(state_dict, converted, frozen):
    model = build_model(_cfg(bn_frozen=frozen))
    x = X[:, :32, :32]
    variables, _ = converted
    assert batchnorm_modes(model, variables, x) == [frozen] * 27  # stem + 13 x (dw, pw)
    out, upd = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
    old, new = variables["batch_stats"]["backbone"], upd["batch_stats"]["backbone"]
    if frozen:
        for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
            np.testing.assert_array_equal(a, b)
        # and the forward uses the running statistics: the eval-mode reference
        ref_feat, _ = reference_forward(state_dict, x.transpose(0, 3, 1, 2), large=False)
        assert np.abs(np.asarray(out["features"]).transpose(0, 3, 1, 2) - ref_feat).max() < 1e-4
        return
    # torch semantics: running_mean <- 0.9 running_mean + 0.1 batch mean (momentum 0.1)
    conv_out = F.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                        torch.from_numpy(state_dict["conv_stem.weight"]), stride=2, padding=1)
    rm = torch.from_numpy(state_dict["bn1.running_mean"].copy())
    rv = torch.from_numpy(state_dict["bn1.running_var"].copy())
    F.batch_norm(conv_out, rm, rv, training=True, momentum=0.1, eps=EPS)
    np.testing.assert_allclose(new["stem"]["bn"]["mean"], rm.numpy(), atol=1e-5)
    for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
        assert not np.allclose(a, b)  # every mean and var moved


class _Probe(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train):
        return x * self.param("scale", nn.initializers.ones, ())


def test_stages_torch_names_and_unknown_stage():
    inserts = tuple((s, _Probe) for s in mobilenet.STAGES)
    backbone = mobilenet.build_backbone("mobilenet_v1", _cfg().model, inserts, jnp.float32)
    params = jax.eval_shape(lambda k: backbone.init(k, jnp.zeros((1, 32, 32, 3)), train=False),
                            init_key(0))["params"]
    names = {f"{s}_insert{i}" for i, s in enumerate(mobilenet.STAGES)}
    assert names <= set(params) and len(mobilenet.STAGES) == 15
    tn = mobilenet.torch_name
    for n in names:
        assert tn(("backbone", n)) is None
    assert tn(("backbone", "stem", "conv")) == "conv_stem"
    assert tn(("backbone", "stem", "bn")) == "bn1"
    assert tn(("backbone", "block0", "dw", "conv")) == "blocks.0.0.conv_dw"
    assert tn(("backbone", "block10", "pw", "bn")) == "blocks.3.5.bn2"
    assert tn(("backbone", "block12", "dw", "bn")) == "blocks.4.1.bn1"
    assert tn(("head", "classifier")) == "classifier"
    model = build_model(_cfg(inserts=(("block11", "adl"), ("last", "adl"))))
    jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False), init_key(0))
    bad = build_model(_cfg(inserts=(("block13", "adl"),)))
    with pytest.raises(ValueError, match="'block13'"):
        jax.eval_shape(lambda k: bad.init(k, jnp.zeros((1, 32, 32, 3)), train=False), init_key(0))
