import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.config import base_config
from wsolax import registry
from wsolax.methods.api import layer_method
from wsolax.models.heads import GAPLinearHead
from wsolax.registry import build_model
from wsolax.models.wsol_model import init_key

# The float32 comparisons are numerically sensitive: CI runs them again with XLA capped at AVX2
# (.ci/run); shapes, dtypes, names and the float64 check hold on either instruction set.


def _model(**model_overrides):
    cfg = base_config()
    cfg.model.width = 4
    for k, v in model_overrides.items():
        cfg.model[k] = v
    return cfg, build_model(cfg)


def test_output_shapes_and_stride():
    cfg, model = _model()
    x = jnp.ones((2, 64, 64, 3))
    variables = jax.jit(lambda k: model.init(k, x, train=False))(init_key(0))
    out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    assert out["logits"].shape == (2, cfg.data.num_classes)
    assert out["cams"].shape == (2, 8, 8, cfg.data.num_classes)
    assert out["features"].shape == (2, 8, 8, 8 * cfg.model.width)


@pytest.mark.slow
def test_tiny_large_feature_map_keeps_stride_4_with_the_same_parameters():
    x = jnp.ones((2, 64, 64, 3))
    shapes = {}
    for large in (False, True):
        _, model = _model(large_feature_map=large)
        variables = jax.jit(lambda k: model.init(k, x, train=False))(init_key(0))
        out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
        assert out["cams"].shape[1:3] == ((16, 16) if large else (8, 8))
        shapes[large] = jax.tree.map(jnp.shape, variables)
    assert shapes[False] == shapes[True]  # a pool less, no weight more: checkpoints interchange


@pytest.mark.numerics
def test_cam_is_the_classifier_applied_at_every_position():
    # Independent identity: logits_k = mean_hw(features) . W_k + b_k and CAM_k = features . W_k / C,
    # so mean_hw(CAM_k) * C + b_k must equal logits_k; and CAM_k at one position by hand.
    head = GAPLinearHead(num_classes=5)
    feats = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4, 6, 7)), jnp.float32)
    variables = head.init(init_key(2), feats)
    logits, cams = head.apply(variables, feats)
    w = np.asarray(variables["params"]["classifier"]["kernel"])
    b = np.asarray(variables["params"]["classifier"]["bias"])
    np.testing.assert_allclose(np.asarray(cams).mean((1, 2)) * 7 + b, logits, rtol=1e-5, atol=1e-5)
    by_hand = sum(float(feats[1, 2, 3, c]) * w[c, 4] for c in range(7)) / 7
    assert abs(float(cams[1, 2, 3, 4]) - by_hand) < 1e-5


@pytest.mark.numerics
def test_cam_classes_selects_per_image_classes():
    head = GAPLinearHead(num_classes=6)
    feats = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 3, 4)), jnp.float32)
    variables = head.init(init_key(4), feats)
    _, all_cams = head.apply(variables, feats)
    classes = jnp.array([[5, 0], [2, 2]])
    _, some = head.apply(variables, feats, classes)
    for b in range(2):
        for n in range(2):
            np.testing.assert_allclose(some[b, ..., n], all_cams[b, ..., int(classes[b, n])], atol=1e-6)


class _Double(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train):
        return x * 2.0


@pytest.mark.numerics
def test_layer_inserted_at_named_stage(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "double", layer_method("double", _Double))
    cfg, plain = _model()
    cfg2, doubled = _model(inserts=(("stage4", "double"),))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 32, 32, 3)), jnp.float32)
    variables = jax.jit(lambda k: plain.init(k, x, train=False))(init_key(0))
    a = jax.jit(lambda v: plain.apply(v, x, train=False)["features"])(variables)
    b = jax.jit(lambda v: doubled.apply(v, x, train=False)["features"])(variables)
    np.testing.assert_allclose(2 * a, b, rtol=1e-6)


def test_unknown_stage_is_named(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "double", layer_method("double", _Double))
    _, model = _model(inserts=(("pool9", "double"),))
    with pytest.raises(ValueError, match="no stage named 'pool9'"):
        model.init(init_key(0), jnp.ones((1, 32, 32, 3)), train=False)


def test_unknown_backbone_is_named():
    cfg = base_config()
    cfg.model.backbone = "resnet9000"
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        build_model(cfg)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
    cfg, model = _model(dtype="bfloat16")
    x = jnp.ones((1, 32, 32, 3))
    variables = jax.jit(lambda k: model.init(k, x, train=False))(init_key(0))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
    out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    assert out["features"].dtype == jnp.bfloat16
    assert out["logits"].dtype == jnp.float32 and out["cams"].dtype == jnp.float32


@pytest.mark.slow
def test_float64_model_needs_x64_and_then_computes_in_float64_throughout():
    with pytest.raises(ValueError, match="JAX_ENABLE_X64"):
        _model(dtype="float64")
    from wsolax.training.optim import make_optimizer
    from wsolax.training.state import init_state

    with jax.enable_x64(True):
        cfg, model = _model(dtype="float64", inserts=(("stage3", "adl"), ("stage4", "dfm")))
        tx, _ = make_optimizer(cfg.optim, 10, 100)
        state = jax.jit(lambda k: init_state(model, tx, k, (1, 32, 32, 3)))(init_key(0))
        assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype("float64")}
        x = np.random.default_rng(0).normal(size=(2, 32, 32, 3))
        out = jax.jit(lambda p, x, k: model.apply({"params": p}, x, train=True,
                                                  rngs={"dropout": k}))(
            state.params, x, jax.random.key(0))
        assert out["logits"].dtype == out["cams"].dtype == out["features"].dtype == jnp.float64
        # Float64 for real: a 1e-12 change of the input moves the logits (float32 would not).
        logits = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False)["logits"])
        bumped, plain = logits(state.params, x * (1 + 1e-12)), logits(state.params, x)
        assert np.any(np.asarray(bumped) != np.asarray(plain))
