"""Contract tests for ADL: identity at eval, determinism, drop-rate statistics, maths by hand,
gradients, jit/vmap, dtype."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.methods.adl import ADL, adl

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics


def _x(seed=0, shape=(4, 5, 6, 8)):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_identity_at_eval_bit_exact():
    x = _x()
    assert adl(None, x, train=False) is x
    module = ADL()
    y = module.apply({}, x, train=False)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_drop_mask_and_importance_map_by_hand():
    # One sample, 2x2 positions, 2 channels. Attention (channel mean): [[1, 4], [2, 0]];
    # max 4, gamma 0.5 -> threshold 2: positions with attention < 2 are kept (1 and 0),
    # 4 and 2 are dropped.
    x = jnp.asarray([[[[0.0, 2.0], [3.0, 5.0]], [[1.0, 3.0], [-1.0, 1.0]]]], jnp.float32)
    always_drop = adl(jax.random.key(0), x, drop_rate=1.0, gamma=0.5)
    expected = np.asarray(x) * np.array([[1.0, 0.0], [0.0, 1.0]])[None, :, :, None]
    np.testing.assert_array_equal(np.asarray(always_drop), expected)
    never_drop = adl(jax.random.key(0), x, drop_rate=0.0, gamma=0.5)
    sigmoid = 1 / (1 + np.exp(-np.array([[1.0, 4.0], [2.0, 0.0]])))
    np.testing.assert_allclose(np.asarray(never_drop), np.asarray(x) * sigmoid[None, :, :, None],
                               rtol=1e-6)


def test_same_key_same_output_different_keys_differ():
    x = _x(1)
    a = adl(jax.random.key(3), x, drop_rate=0.5)
    b = adl(jax.random.key(3), x, drop_rate=0.5)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    outs = {np.asarray(adl(jax.random.key(k), x, drop_rate=0.5)).tobytes() for k in range(20)}
    assert len(outs) == 2  # per batch: exactly the two branches occur over 20 keys


@pytest.mark.parametrize("per_sample", [False, True])
def test_drop_rate_statistics(per_sample):
    # Count how often the drop branch is taken: with drop_rate 0.75 over n draws, the count is
    # Binomial(n, 0.75); 6 standard deviations is a bound that a correct layer fails ~never.
    x = jnp.abs(_x(2, (8, 4, 4, 3))) + 1.0  # positive, so sigmoid(att) > 0.5 and != drop mask
    drop = jax.jit(lambda k: adl(k, x, drop_rate=0.75, gamma=0.9, per_sample=per_sample))
    dropped = adl(jax.random.key(0), x, drop_rate=1.0, gamma=0.9)
    n, hits = 0, 0
    for k in range(400):
        y = np.asarray(drop(jax.random.key(k)))
        per_image = np.all(np.isclose(y, np.asarray(dropped)), axis=(1, 2, 3))
        if not per_sample:
            assert per_image.all() or not per_image.any()  # one choice for the whole batch
            per_image = per_image[:1]
        n += per_image.size
        hits += per_image.sum()
    sd = np.sqrt(n * 0.75 * 0.25)
    assert abs(hits - 0.75 * n) < 6 * sd, (hits, n)
    if per_sample:
        assert n == 3200


def test_gradients_flow_to_the_input():
    x = _x(4)
    g = jax.grad(lambda v: adl(jax.random.key(1), v, drop_rate=0.0).sum())(x)
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0


def test_jit_and_vmap():
    x = _x(5)
    keys = jax.random.split(jax.random.key(0), 3)
    xs = jnp.stack([x, x * 2, x - 1])
    out = jax.jit(jax.vmap(lambda k, v: adl(k, v, drop_rate=0.5)))(keys, xs)
    assert out.shape == xs.shape
    for i in range(3):
        np.testing.assert_allclose(out[i], adl(keys[i], xs[i], drop_rate=0.5), rtol=1e-6)


def test_dtype_preserved_bfloat16():
    x = _x(6).astype(jnp.bfloat16)
    assert adl(jax.random.key(0), x, drop_rate=0.5).dtype == jnp.bfloat16


def test_module_draws_from_the_dropout_stream():
    x = _x(7)
    m = ADL(drop_rate=0.5)
    a = m.apply({}, x, train=True, rngs={"dropout": jax.random.key(11)})
    b = adl(jax.random.fold_in(jax.random.key(11), 0), x, drop_rate=0.5)  # any key: shape check
    assert a.shape == b.shape and a.dtype == x.dtype
    c = m.apply({}, x, train=True, rngs={"dropout": jax.random.key(11)})
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    with pytest.raises(Exception):
        m.apply({}, x, train=True)  # no key: refuses instead of silently using a global RNG


def test_adl_placed_by_config_is_identity_at_eval_and_active_in_training():
    from wsolax.config import load_config
    from wsolax.registry import build_model
    from wsolax.models.wsol_model import init_key

    cfg = load_config("configs/synthetic_adl.py", ["--config.model.width=4"])
    plain_cfg = load_config("configs/synthetic_cam.py", ["--config.model.width=4"])
    with_adl, plain = build_model(cfg), build_model(plain_cfg)
    x = _x(8, (2, 32, 32, 3))
    variables = jax.jit(lambda k: plain.init(k, x, train=False))(init_key(0))
    eval_a = jax.jit(lambda v: with_adl.apply(v, x, train=False)["logits"])(variables)
    eval_b = jax.jit(lambda v: plain.apply(v, x, train=False)["logits"])(variables)
    np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
    train_a = jax.jit(lambda v, k: with_adl.apply(v, x, train=True, rngs={"dropout": k})["logits"])
    outs = [np.asarray(train_a(variables, jax.random.key(k))) for k in range(4)]
    assert any(not np.array_equal(o, np.asarray(eval_b)) for o in outs)


def test_unknown_adl_hyperparameter_is_named():
    from wsolax.config import load_config
    from wsolax.registry import build_model

    cfg = load_config("configs/synthetic_adl.py", ["--config.model.methods.adl.gama=0.8"])
    with pytest.raises(ValueError, match="model.methods.adl.gama"):
        build_model(cfg)
