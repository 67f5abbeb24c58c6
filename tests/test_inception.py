"""InceptionV3 (WSOL variant): numerical parity with an independent torch.nn.functional reference
on a torchvision `inception_v3` state dict (random weights), plus sizes, stages, BN and names."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backbone_testing import backbone_config, batchnorm_modes, numpy_variables, torch_one_thread  # noqa: F401  (autouse fixture)

from wsolax.models import inception
from wsolax.registry import backbone_module, build_model
from wsolax.models.wsol_model import init_key
from wsolax.weights import convert_torch_state_dict

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics

NUM_CLASSES = 5
EPS = 1e-3  # torchvision's BasicConv2d BatchNorm
REMOVED = ("Mixed_7a.", "Mixed_7b.", "Mixed_7c.", "AuxLogits.", "fc.")


# ---------------------------------------------------------------- torchvision state dict layout
def basic(name, cin, cout, k):
    kh, kw = (k, k) if isinstance(k, int) else k
    return [(f"{name}.conv.weight", (cout, cin, kh, kw))] + [
        (f"{name}.bn.{leaf}", (cout,)) for leaf in ("weight", "bias", "running_mean", "running_var")
    ] + [(f"{name}.bn.num_batches_tracked", ())]


def block_a(p, cin, pool):
    return (basic(f"{p}.branch1x1", cin, 64, 1) + basic(f"{p}.branch5x5_1", cin, 48, 1)
            + basic(f"{p}.branch5x5_2", 48, 64, 5) + basic(f"{p}.branch3x3dbl_1", cin, 64, 1)
            + basic(f"{p}.branch3x3dbl_2", 64, 96, 3) + basic(f"{p}.branch3x3dbl_3", 96, 96, 3)
            + basic(f"{p}.branch_pool", cin, pool, 1))


def block_b(p, cin):
    return (basic(f"{p}.branch3x3", cin, 384, 3) + basic(f"{p}.branch3x3dbl_1", cin, 64, 1)
            + basic(f"{p}.branch3x3dbl_2", 64, 96, 3) + basic(f"{p}.branch3x3dbl_3", 96, 96, 3))


def block_c(p, cin, c7):
    return (basic(f"{p}.branch1x1", cin, 192, 1) + basic(f"{p}.branch7x7_1", cin, c7, 1)
            + basic(f"{p}.branch7x7_2", c7, c7, (1, 7)) + basic(f"{p}.branch7x7_3", c7, 192, (7, 1))
            + basic(f"{p}.branch7x7dbl_1", cin, c7, 1)
            + basic(f"{p}.branch7x7dbl_2", c7, c7, (7, 1))
            + basic(f"{p}.branch7x7dbl_3", c7, c7, (1, 7))
            + basic(f"{p}.branch7x7dbl_4", c7, c7, (7, 1))
            + basic(f"{p}.branch7x7dbl_5", c7, 192, (1, 7))
            + basic(f"{p}.branch_pool", cin, 192, 1))


def block_d(p, cin):
    return (basic(f"{p}.branch3x3_1", cin, 192, 1) + basic(f"{p}.branch3x3_2", 192, 320, 3)
            + basic(f"{p}.branch7x7x3_1", cin, 192, 1)
            + basic(f"{p}.branch7x7x3_2", 192, 192, (1, 7))
            + basic(f"{p}.branch7x7x3_3", 192, 192, (7, 1))
            + basic(f"{p}.branch7x7x3_4", 192, 192, 3))


def block_e(p, cin):
    return (basic(f"{p}.branch1x1", cin, 320, 1) + basic(f"{p}.branch3x3_1", cin, 384, 1)
            + basic(f"{p}.branch3x3_2a", 384, 384, (1, 3))
            + basic(f"{p}.branch3x3_2b", 384, 384, (3, 1))
            + basic(f"{p}.branch3x3dbl_1", cin, 448, 1) + basic(f"{p}.branch3x3dbl_2", 448, 384, 3)
            + basic(f"{p}.branch3x3dbl_3a", 384, 384, (1, 3))
            + basic(f"{p}.branch3x3dbl_3b", 384, 384, (3, 1))
            + basic(f"{p}.branch_pool", cin, 192, 1))


def torchvision_spec():
    """(name, shape) of every tensor in torchvision's inception_v3 state dict (aux logits on)."""
    return (basic("Conv2d_1a_3x3", 3, 32, 3) + basic("Conv2d_2a_3x3", 32, 32, 3)
            + basic("Conv2d_2b_3x3", 32, 64, 3) + basic("Conv2d_3b_1x1", 64, 80, 1)
            + basic("Conv2d_4a_3x3", 80, 192, 3)
            + block_a("Mixed_5b", 192, 32) + block_a("Mixed_5c", 256, 64)
            + block_a("Mixed_5d", 288, 64) + block_b("Mixed_6a", 288)
            + block_c("Mixed_6b", 768, 128) + block_c("Mixed_6c", 768, 160)
            + block_c("Mixed_6d", 768, 160) + block_c("Mixed_6e", 768, 192)
            + basic("AuxLogits.conv0", 768, 128, 1) + basic("AuxLogits.conv1", 128, 768, 5)
            + [("AuxLogits.fc.weight", (1000, 768)), ("AuxLogits.fc.bias", (1000,))]
            + block_d("Mixed_7a", 768) + block_e("Mixed_7b", 1280) + block_e("Mixed_7c", 2048)
            + [("fc.weight", (1000, 2048)), ("fc.bias", (1000,))])


def random_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    sd = {}
    for name, shape in torchvision_spec():
        if name.endswith("num_batches_tracked"):
            sd[name] = np.array(1000, np.int64)
        elif name.startswith(REMOVED):
            # Never read by the WSOL model: a zero-stride view with the real name and shape.
            sd[name] = np.broadcast_to(np.float32(0), shape)
        elif name.endswith("conv.weight"):
            sd[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
                        ).astype(np.float32)
        elif name.endswith("bn.weight"):  # mean < 1: activations stay O(1) through the max pools
            sd[name] = rng.uniform(0.7, 1.2, shape).astype(np.float32)
        elif name.endswith("running_var"):
            sd[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:  # bn.bias, running_mean
            sd[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return sd


# ---------------------------------------------------------------- reference forward (NCHW)
def reference_forward(sd, x_nchw, head_convs, fc_w, fc_b, large):
    t = lambda k: torch.from_numpy(np.ascontiguousarray(sd[k]))  # noqa: E731

    def conv(x, name, stride=1, padding=0):
        x = F.conv2d(x, t(f"{name}.conv.weight"), None, stride, padding)
        x = F.batch_norm(x, t(f"{name}.bn.running_mean"), t(f"{name}.bn.running_var"),
                         t(f"{name}.bn.weight"), t(f"{name}.bn.bias"), training=False, eps=EPS)
        return F.relu(x)

    def a(x, p):
        b1 = conv(x, f"{p}.branch1x1")
        b5 = conv(conv(x, f"{p}.branch5x5_1"), f"{p}.branch5x5_2", padding=2)
        b3 = conv(conv(conv(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1),
                  f"{p}.branch3x3dbl_3", padding=1)
        bp = conv(F.avg_pool2d(x, 3, stride=1, padding=1), f"{p}.branch_pool")
        return torch.cat([b1, b5, b3, bp], 1)

    def b_wsol(x, p):  # Mixed_6a without stride
        b3 = conv(x, f"{p}.branch3x3", stride=1, padding=1)
        bd = conv(conv(conv(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1),
                  f"{p}.branch3x3dbl_3", stride=1, padding=1)
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=1, padding=1)], 1)

    def c(x, p):
        b1 = conv(x, f"{p}.branch1x1")
        b7 = conv(x, f"{p}.branch7x7_1")
        b7 = conv(b7, f"{p}.branch7x7_2", padding=(0, 3))
        b7 = conv(b7, f"{p}.branch7x7_3", padding=(3, 0))
        bd = conv(x, f"{p}.branch7x7dbl_1")
        bd = conv(bd, f"{p}.branch7x7dbl_2", padding=(3, 0))
        bd = conv(bd, f"{p}.branch7x7dbl_3", padding=(0, 3))
        bd = conv(bd, f"{p}.branch7x7dbl_4", padding=(3, 0))
        bd = conv(bd, f"{p}.branch7x7dbl_5", padding=(0, 3))
        bp = conv(F.avg_pool2d(x, 3, stride=1, padding=1), f"{p}.branch_pool")
        return torch.cat([b1, b7, bd, bp], 1)

    x = torch.from_numpy(x_nchw)
    x = conv(x, "Conv2d_1a_3x3", stride=2, padding=1)
    x = conv(x, "Conv2d_2a_3x3")
    x = conv(x, "Conv2d_2b_3x3", padding=1)
    x = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    x = conv(x, "Conv2d_3b_1x1")
    x = conv(x, "Conv2d_4a_3x3")
    x = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    for p in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = a(x, p)
    if not large:
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
    x = b_wsol(x, "Mixed_6a")
    for p in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = c(x, p)
    for w, b in head_convs:
        x = F.relu(F.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), padding=1))
    logits = F.linear(x.mean(dim=(2, 3)), torch.from_numpy(fc_w), torch.from_numpy(fc_b))
    return x.numpy(), logits.numpy()


# ---------------------------------------------------------------- helpers

def _cfg(**model):
    return backbone_config("inception_v3", NUM_CLASSES, **model)


@pytest.fixture(scope="module")
def state_dict():
    return random_state_dict()



@pytest.fixture(scope="module")
def converted(state_dict):
    # 64 px: 1a 32, 2a/2b 30, pool 16 (ceil_mode matters: floor would give 15), 3b 16, 4a 14,
    # pool 8, Mixed_5* 8x8, extra pool 4 (ceil: floor would give 3), Mixed_6* and features 4x4.
    model = build_model(_cfg())
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)
    variables, report = convert_torch_state_dict(
        state_dict, numpy_variables(model, x), backbone_module("inception_v3").torch_name)
    return model, x, variables, report


# ---------------------------------------------------------------- tests
def test_conversion_report(converted):
    _, _, _, report = converted
    spec = dict(torchvision_spec())
    kept = {k for k in spec if not k.startswith(REMOVED) and not k.endswith("num_batches_tracked")}
    assert report.missing == [] and report.skipped == []
    assert sorted(report.unused) == sorted(
        k for k in spec if k.startswith(REMOVED) and not k.endswith("num_batches_tracked"))
    assert sorted(report.ignored) == sorted(k for k in spec if k.endswith("num_batches_tracked"))
    assert sorted(t for _, t in report.loaded) == sorted(kept)
    assert sorted(report.new_layers) == sorted(
        f"params/{m}/{leaf}" for m in ("backbone/wsol_head_conv1", "backbone/wsol_head_conv2",
                                       "head/classifier") for leaf in ("kernel", "bias"))


@pytest.mark.slow
def test_parity_with_torch_reference(state_dict, converted):
    model, x, variables, _ = converted
    out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    p = variables["params"]
    heads = [(np.array(p["backbone"][f"wsol_head_conv{i}"]["kernel"]).transpose(3, 2, 0, 1).copy(),
              np.array(p["backbone"][f"wsol_head_conv{i}"]["bias"])) for i in (1, 2)]
    fc_w = np.array(p["head"]["classifier"]["kernel"]).T.copy()
    fc_b = np.array(p["head"]["classifier"]["bias"])
    ref_feat, ref_logits = reference_forward(state_dict, x.transpose(0, 3, 1, 2), heads, fc_w,
                                             fc_b, large=False)
    feat = np.asarray(out["features"]).transpose(0, 3, 1, 2)
    assert feat.shape == ref_feat.shape == (2, 1024, 4, 4)
    feat_err = float(np.abs(feat - ref_feat).max())
    logit_err = float(np.abs(np.asarray(out["logits"]) - ref_logits).max())
    print(f"inception_v3: max|features err|={feat_err:.2e} max|logits err|={logit_err:.2e} "
          f"(feature scale {np.abs(ref_feat).max():.2f})")
    assert feat_err <= 1e-4 and logit_err <= 1e-4
    assert np.abs(ref_feat).max() > 0.1


@pytest.mark.parametrize("large", [False, True])
def test_feature_sizes_at_224(large):
    model = build_model(_cfg(large_feature_map=large))
    out, variables = jax.eval_shape(
        lambda k: model.init_with_output(k, jnp.zeros((1, 224, 224, 3)), train=False,
                                         capture_intermediates=True), init_key(0))
    stage = lambda n: variables["intermediates"]["backbone"][n]["__call__"][0].shape  # noqa: E731
    assert stage("Conv2d_1a_3x3") == (1, 112, 112, 32)
    assert stage("Conv2d_4a_3x3") == (1, 54, 54, 192)
    assert stage("Mixed_5d") == (1, 28, 28, 288)
    side = 28 if large else 14
    assert stage("Mixed_6a") == stage("Mixed_6e") == (1, side, side, 768)
    assert out["features"].shape == (1, side, side, 1024)



def test_batchnorm_statistics_update_unless_frozen(state_dict, converted):
    model, x, variables, _ = converted
    n_bn = sum(k.endswith(".bn.weight") and not k.startswith(REMOVED) for k in state_dict)
    assert batchnorm_modes(model, variables, x) == [False] * n_bn
    frozen = build_model(_cfg(bn_frozen=True))
    assert batchnorm_modes(frozen, variables, x) == [True] * n_bn  # frozen: never updated

    _, upd = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
    old, new = variables["batch_stats"]["backbone"], upd["batch_stats"]["backbone"]
    # torch semantics: running_mean <- 0.9 running_mean + 0.1 batch mean (momentum 0.1)
    conv_out = F.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                        torch.from_numpy(state_dict["Conv2d_1a_3x3.conv.weight"]), None, 2, 1)
    rm = torch.from_numpy(state_dict["Conv2d_1a_3x3.bn.running_mean"].copy())
    rv = torch.from_numpy(state_dict["Conv2d_1a_3x3.bn.running_var"].copy())
    F.batch_norm(conv_out, rm, rv, training=True, momentum=0.1, eps=EPS)
    np.testing.assert_allclose(new["Conv2d_1a_3x3"]["bn"]["mean"], rm.numpy(), atol=1e-5)
    for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
        assert not np.allclose(a, b)  # every mean and var moved


def test_stages_and_torch_names():
    class Probe(nn.Module):
        dtype: jnp.dtype = jnp.float32

        @nn.compact
        def __call__(self, x, *, train):
            return x * self.param("scale", nn.initializers.ones, ())

    inserts = tuple((s, Probe) for s in inception.STAGES)
    backbone = inception.build_backbone("inception_v3", _cfg().model, inserts, jnp.float32)
    params = jax.eval_shape(lambda k: backbone.init(k, jnp.zeros((1, 32, 32, 3)), train=False),
                            init_key(0))["params"]
    names = {f"{s}_insert{i}" for i, s in enumerate(inception.STAGES)}
    assert names <= set(params)
    for n in names:
        assert inception.torch_name(("backbone", n)) is None
    tn = inception.torch_name
    assert tn(("backbone", "Mixed_5b", "branch1x1", "conv")) == "Mixed_5b.branch1x1.conv"
    assert tn(("backbone", "Conv2d_1a_3x3", "bn")) == "Conv2d_1a_3x3.bn"
    assert tn(("backbone", "wsol_head_conv1")) is None
    assert tn(("head", "classifier")) is None
    bad = build_model(_cfg(inserts=(("Mixed_7c", "adl"),)))
    with pytest.raises(ValueError, match="'Mixed_7c'"):
        jax.eval_shape(lambda k: bad.init(k, jnp.zeros((1, 32, 32, 3)), train=False), init_key(0))
