"""Contract tests for DFM: F + F at eval (the identity under readings v1), train-vs-test scale,
determinism, choice statistics, masks / neighbour
spreading / fusion by hand and against a literal loop oracle, gradients, jit/vmap, dtype, config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.methods.dfm import DFM, channel_branch, dfm, fusion_maps, position_branch

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics

PAPER = dict(alpha=0.85, beta=0.95, omega=0.15, delta=0.6, gamma=0.4)


def _x(seed=0, shape=(4, 5, 6, 8)):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _oracle(x, *, alpha, beta, omega, delta, gamma, use_position):
    """Slow literal reading of Eqs. 1-16 for one fixed choice (P_ME if use_position, else C_ME)."""
    x = np.asarray(x, np.float64)
    b_, h, w, c = x.shape
    out = np.zeros_like(x)
    for b in range(b_):
        ca = [sum(x[b, i, j, k] for i in range(h) for j in range(w)) / (h * w) for k in range(c)]
        cm = [0.0 if ca[k] >= alpha * max(ca) else 1.0 for k in range(c)]
        pa = [[sum(x[b, i, j, k] for k in range(c)) / c for j in range(w)] for i in range(h)]
        kmax = max(max(row) for row in pa)
        pm0 = [[0.0 if pa[i][j] >= beta * kmax else 1.0 for j in range(w)] for i in range(h)]
        pm = [row[:] for row in pm0]
        for i in range(h):
            for j in range(w):
                if pm0[i][j] != 0.0:
                    continue
                for s in range(i - 1, i + 2):
                    for t in range(j - 1, j + 2):
                        if 0 <= s < h and 0 <= t < w:
                            pm[s][t] = pm0[s][t] + omega * pm0[s][t]  # set, not accumulate
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    c_me = delta * np.tanh(pa[i][j]) + cm[k]
                    p_me = gamma * np.tanh(ca[k]) + pm[i][j]
                    m = p_me if use_position else c_me
                    out[b, i, j, k] = x[b, i, j, k] + x[b, i, j, k] * m
    return out


def test_eval_is_f_plus_f_and_the_identity_under_the_earlier_reading():
    # Eq. 16 with the module's branch passing its input at test: F_out = F_in + F_in (exact in
    # floating point: doubling only changes the exponent).
    x = _x()
    np.testing.assert_array_equal(np.asarray(dfm(None, x, train=False)), 2 * np.asarray(x))
    y = DFM().apply({}, x, train=False)
    np.testing.assert_array_equal(np.asarray(y), 2 * np.asarray(x))
    assert dfm(None, x, train=False, eval_output="identity") is x
    z = DFM(eval_output="identity").apply({}, x, train=False)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(x))
    with pytest.raises(ValueError, match="eval_output"):
        dfm(None, x, train=False, eval_output="half")


@pytest.mark.parametrize("eval_output,ratio", [("residual", (0.85, 1.15)),
                                               ("identity", (1.7, 2.3))])
def test_train_and_test_see_features_on_the_same_scale(eval_output, ratio):
    """Non-negative features: every training cell is F (1 + M) with 0 <= M <= 1 + delta = 1.6
    (C_ME) or 1 + omega + gamma = 1.55 (P_ME), between 0.5x and 1.3x the test output F + F; most
    cells are kept (M = 1 + a small enhancement), so the mean lies within 15 % of the test
    output. The earlier reading's test output F is half of that: about 2x below training."""
    x = jax.nn.relu(_x(11, (8, 12, 12, 32))) / 4
    train = jax.vmap(lambda k: dfm(k, x, **PAPER, tau=0.7))(
        jax.vmap(jax.random.key)(jnp.arange(64)))
    test = dfm(None, x, train=False, eval_output=eval_output)
    got = float(jnp.mean(train)) / float(jnp.mean(test))
    assert ratio[0] <= got <= ratio[1], got


def test_defaults_are_the_paper_resnet50_settings_and_nothing_is_learned():
    m = DFM()
    assert (m.alpha, m.beta, m.omega, m.delta, m.gamma, m.tau) == (0.85, 0.95, 0.15, 0.6, 0.4, 0.7)
    assert m.per_sample is False
    variables = jax.eval_shape(lambda: m.init({"dropout": jax.random.key(0)}, _x(), train=True))
    assert jax.tree_util.tree_leaves(variables) == []


def test_channel_mask_by_hand():
    # Constant per-channel maps, so GAP = the values: C_A = [0.25, 1, 0.5, 0.875] (exact in fp32).
    # alpha 0.5 -> threshold 0.5: 1, 0.875 and 0.5 (equal to the threshold: ">=" hides it) are
    # masked, only 0.25 is kept.
    ca = np.array([0.25, 1.0, 0.5, 0.875], np.float32)
    x = jnp.asarray(np.broadcast_to(ca, (1, 3, 2, 4)).copy())
    c_e, c_m = channel_branch(x, alpha=0.5)
    assert c_m.shape == (1, 1, 1, 4)
    np.testing.assert_array_equal(np.asarray(c_m).ravel(), [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(c_e).ravel(), np.tanh(ca), rtol=1e-6)
    # alpha 0.85 (paper) -> threshold 0.85: 1 and 0.875 are hidden.
    _, c_m = channel_branch(x, alpha=0.85)
    np.testing.assert_array_equal(np.asarray(c_m).ravel(), [1.0, 0.0, 1.0, 0.0])
    # Per image: a second image with everything halved gets the same mask from its own maximum.
    _, c_m = channel_branch(jnp.concatenate([x, x / 2]), alpha=0.85)
    np.testing.assert_array_equal(np.asarray(c_m)[:, 0, 0], [[1.0, 0.0, 1.0, 0.0]] * 2)


def _hot(spots, h=5, w=5, c=2):
    # Channel mean 1 everywhere except 4 at the hot spots: with beta 0.95 only the spots are hidden.
    x = np.ones((1, h, w, c), np.float32)
    for i, j in spots:
        x[0, i, j, :] = 4.0
    return jnp.asarray(x)


A = 1.15  # 1 + omega: a kept position next to the erased region


@pytest.mark.parametrize("spots,expected", [
    ([(2, 2)], [[1, 1, 1, 1, 1],
                [1, A, A, A, 1],
                [1, A, 0, A, 1],
                [1, A, A, A, 1],
                [1, 1, 1, 1, 1]]),
    ([(0, 0)], [[0, A, 1, 1, 1],    # corner: three neighbours, nothing wraps to the far side
                [A, A, 1, 1, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1]]),
    ([(0, 2)], [[1, A, 0, A, 1],    # top border: five neighbours
                [1, A, A, A, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1]]),
    ([(4, 4)], [[1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, A, A],
                [1, 1, 1, A, 0]]),
    # Two adjacent spots: a shared neighbour is strengthened once (1.15, not 1.30) and a masked
    # neighbour stays 0.
    ([(2, 1), (2, 2)], [[1, 1, 1, 1, 1],
                        [A, A, A, A, 1],
                        [A, 0, 0, A, 1],
                        [A, A, A, A, 1],
                        [1, 1, 1, 1, 1]]),
])
def test_position_mask_and_neighbour_spreading_by_hand(spots, expected):
    x = _hot(spots)
    p_e, p_m = position_branch(x, beta=0.95, omega=0.15)
    assert p_m.shape == (1, 5, 5, 1)
    np.testing.assert_allclose(np.asarray(p_m)[0, :, :, 0], np.array(expected), rtol=1e-6)
    pa = np.ones((5, 5))
    for i, j in spots:
        pa[i, j] = 4.0
    np.testing.assert_allclose(np.asarray(p_e)[0, :, :, 0], np.tanh(pa), rtol=1e-6)


def test_omega_zero_gives_the_plain_threshold_mask():
    _, p_m = position_branch(_hot([(2, 2)]), beta=0.95, omega=0.0)
    expected = np.ones((5, 5))
    expected[2, 2] = 0
    np.testing.assert_array_equal(np.asarray(p_m)[0, :, :, 0], expected)


def test_cross_fusion_and_output_by_hand():
    # One image, 2x2 positions, 2 channels (values per position as [ch0, ch1]):
    #   (0,0) [2, 0]  (0,1) [0, 0]  (1,0) [2, 2]  (1,1) [0, 4]
    # C_A = [1, 1.5]; alpha 0.85 -> threshold 1.275 -> C_M = [1, 0].
    # P_A = [[1, 0], [2, 2]]; beta 0.95 -> threshold 1.9 -> P'_M = [[1, 1], [0, 0]]; both kept
    # positions touch the erased row -> P_M = [[1.15, 1.15], [0, 0]].
    x = jnp.asarray([[[[2.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [0.0, 4.0]]]], jnp.float32)
    pa = np.array([[1.0, 0.0], [2.0, 2.0]])
    c_me = np.stack([0.6 * np.tanh(pa) + 1.0, 0.6 * np.tanh(pa) + 0.0], axis=-1)[None]
    pm = np.array([[1.15, 1.15], [0.0, 0.0]])
    p_me = np.stack([0.4 * np.tanh(1.0) + pm, 0.4 * np.tanh(1.5) + pm], axis=-1)[None]
    k = jax.random.key(0)
    got_c, got_p, out_p, out_c = jax.jit(lambda v: (
        *fusion_maps(v, **PAPER), dfm(k, v, tau=1.0, **PAPER), dfm(k, v, tau=0.0, **PAPER)))(x)
    np.testing.assert_allclose(np.asarray(got_c), c_me, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_p), p_me, rtol=1e-6)
    # tau 1 always picks P_ME, tau 0 always C_ME; output F + F * M (Eq. 16).
    xn = np.asarray(x)
    np.testing.assert_allclose(np.asarray(out_p), xn + xn * p_me, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out_c), xn + xn * c_me, rtol=1e-6)


@pytest.mark.parametrize("use_position", [False, True])
def test_matches_literal_loop_oracle(use_position):
    x = jnp.abs(_x(9, (2, 6, 7, 5)))  # post-ReLU-like, as at the paper's insertion points
    x = x.at[1].set(-x[1] + 0.3)  # and one image with mixed signs
    tau = 1.0 if use_position else 0.0
    got = jax.jit(lambda v: dfm(jax.random.key(0), v, tau=tau, **PAPER))(x)
    want = _oracle(x, use_position=use_position, **PAPER)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_same_key_same_output_different_keys_differ():
    x = jnp.abs(_x(1)) + 0.1
    layer = jax.jit(lambda k: dfm(k, x, tau=0.5))
    a, b = layer(jax.random.key(3)), layer(jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ys = np.asarray(jax.jit(jax.vmap(layer))(jax.vmap(jax.random.key)(jnp.arange(20))))
    outs = {y.tobytes() for y in ys}
    assert len(outs) == 2  # per batch: exactly the two fused maps occur over 20 keys


@pytest.mark.parametrize("per_sample", [False, True])
def test_tau_is_the_rate_of_choosing_the_position_fused_map(per_sample):
    # The number of P_ME choices over n draws is Binomial(n, 0.7); a correct layer lands outside
    # 5 standard deviations with probability ~6e-7.
    x = jnp.abs(_x(2, (8, 4, 4, 3))) + 0.5

    @jax.jit
    def run(keys):
        k = jax.random.key(0)
        ys = jax.vmap(lambda k: dfm(k, x, tau=0.7, per_sample=per_sample))(keys)
        return dfm(k, x, tau=1.0), dfm(k, x, tau=0.0), ys

    p_out, c_out, ys = map(np.asarray, run(jax.vmap(jax.random.key)(jnp.arange(300))))
    assert not np.isclose(p_out, c_out).all(axis=(1, 2, 3)).any()  # branches distinguishable
    n, hits = 0, 0
    for y in ys:
        is_p = np.isclose(y, p_out).all(axis=(1, 2, 3))
        assert (is_p | np.isclose(y, c_out).all(axis=(1, 2, 3))).all()  # nothing else comes out
        if not per_sample:
            assert is_p.all() or not is_p.any()  # one choice for the whole batch
            is_p = is_p[:1]
        n += is_p.size
        hits += int(is_p.sum())
    assert n == (2400 if per_sample else 300)
    sd = np.sqrt(n * 0.7 * 0.3)
    assert abs(hits - 0.7 * n) < 5 * sd, (hits, n)


def test_gradients_flow_to_the_input():
    x = jnp.abs(_x(4)) + 0.1
    xn = np.asarray(x)

    def grad(**hp):
        return jax.grad(lambda v: dfm(jax.random.key(1), v, **hp).sum())(x)

    # One compile for the three cases.
    g_c, g_p, g = jax.jit(lambda: (grad(tau=0.0, delta=0.0), grad(tau=1.0, gamma=0.0), grad()))()
    # With the enhancement weight at 0, y = x * (1 + mask): d sum(y) / dx = 1 + mask exactly --
    # 2 (or 2.15 next to the erased region) at kept positions, 1 (the residual) where erased.
    ca = xn.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    threshold = 0.85 * ca.max(axis=-1, keepdims=True)
    # The expected mask is only well defined if no channel mean sits within rounding of its
    # threshold (then float32 means of another summation order could fall on the other side).
    assert (np.abs(ca - threshold) / threshold).min() > 1e-5
    cm = (ca < threshold).astype(np.float32)
    np.testing.assert_allclose(np.asarray(g_c), np.broadcast_to(1 + cm, xn.shape), rtol=1e-6)
    _, pm = position_branch(x, beta=0.95, omega=0.15)
    np.testing.assert_allclose(np.asarray(g_p), np.broadcast_to(1 + np.asarray(pm), xn.shape),
                               rtol=1e-6)
    values = np.asarray(g_p).ravel()
    assert (np.abs(values[:, None] - np.array([1.0, 2.0, 2.15])).min(axis=1) < 1e-5).all()
    assert (values > 1.5).any() and (values < 1.5).any()  # both kept and erased positions occur
    # Defaults: also through the tanh enhancement maps; finite and non-zero everywhere.
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).min() > 0


def test_jit_and_vmap():
    x = _x(5)
    keys = jax.random.split(jax.random.key(0), 3)
    xs = jnp.stack([x, x * 2, x - 1])
    out = jax.jit(jax.vmap(lambda k, v: dfm(k, v, tau=0.5)))(keys, xs)
    assert out.shape == xs.shape
    single = jax.jit(lambda k, v: dfm(k, v, tau=0.5))
    for i in range(3):
        np.testing.assert_allclose(out[i], single(keys[i], xs[i]), rtol=1e-6)
    per_image = jax.jit(lambda k, v: dfm(k, v, tau=0.5, per_sample=True))(keys[0], x)
    assert per_image.shape == x.shape


def test_dtype_preserved_bfloat16():
    x = (jnp.abs(_x(6)) + 0.1).astype(jnp.bfloat16)
    y = dfm(jax.random.key(0), x, tau=1.0)
    assert y.dtype == jnp.bfloat16
    ref = dfm(jax.random.key(0), x.astype(jnp.float32), tau=1.0)
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(ref), rtol=1e-2)
    assert dfm(None, x, train=False).dtype == jnp.bfloat16
    assert dfm(None, x, train=False, eval_output="identity") is x


def test_module_draws_from_the_dropout_stream():
    x = jnp.abs(_x(7)) + 0.1
    m = DFM(tau=0.5)
    run = jax.jit(lambda k: m.apply({}, x, train=True, rngs={"dropout": k}))
    a, c = run(jax.random.key(11)), run(jax.random.key(11))
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    outs = {np.asarray(run(jax.random.key(k))).tobytes() for k in range(12)}
    assert len(outs) == 2  # the key comes from the stream: different keys, different choices
    # The module passes its hyperparameters through: tau 1 is the position-fused output.
    fixed = DFM(tau=1.0, omega=0.3).apply({}, x, train=True, rngs={"dropout": jax.random.key(0)})
    np.testing.assert_array_equal(np.asarray(fixed),
                                  np.asarray(dfm(jax.random.key(5), x, tau=1.0, omega=0.3)))
    with pytest.raises(Exception):
        m.apply({}, x, train=True)  # no key: refuses instead of silently using a global RNG


def test_registry_sees_exactly_the_hyperparameters():
    from wsolax.registry import method_hparams

    assert set(method_hparams("dfm")) == {"alpha", "beta", "omega", "delta", "gamma", "tau",
                                          "per_sample", "eval_output"}


@pytest.mark.parametrize("variant", [None, "runlocal"])
def test_config_loads(variant):
    from wsolax.config import load_config

    path = "configs/synthetic_dfm.py" + (f":{variant}" if variant else "")
    cfg = load_config(path, [])
    assert tuple(map(tuple, cfg.model.inserts)) == (("stage3", "dfm"), ("stage4", "dfm"))
    assert dict(cfg.model.methods.dfm) == {"alpha": 0.85, "beta": 0.95, "omega": 0.15,
                                           "delta": 0.6, "gamma": 0.4, "tau": 0.7}
    assert cfg.workdir.startswith("runs/synthetic_dfm")
    v1 = load_config(path.replace(f":{variant}", "") + f":{variant + ',' if variant else ''}"
                     "readings=v1", [])
    assert dict(v1.model.methods.dfm) == {**dict(cfg.model.methods.dfm), "eval_output": "identity"}


def test_dfm_placed_by_config_under_v1_is_identity_at_eval_and_active_in_training():
    from wsolax.config import load_config
    from wsolax.registry import build_model
    from wsolax.models.wsol_model import init_key

    cfg = load_config("configs/synthetic_dfm.py:readings=v1", ["--config.model.width=4"])
    plain_cfg = load_config("configs/synthetic_cam.py", ["--config.model.width=4"])
    with_dfm, plain = build_model(cfg), build_model(plain_cfg)
    x = _x(8, (2, 32, 32, 3))

    @jax.jit
    def run(key):  # one compile: DFM has no parameters, so the plain model's variables fit both
        variables = plain.init(key, x, train=False)
        eval_a = with_dfm.apply(variables, x, train=False)["logits"]
        eval_b = plain.apply(variables, x, train=False)["logits"]
        train = jax.vmap(lambda k: with_dfm.apply(variables, x, train=True,
                                                  rngs={"dropout": k})["logits"])
        return eval_a, eval_b, train(jax.vmap(jax.random.key)(jnp.arange(4)))

    eval_a, eval_b, outs = map(np.asarray, run(init_key(0)))
    np.testing.assert_array_equal(eval_a, eval_b)
    assert any(not np.array_equal(o, eval_b) for o in outs)


def test_unknown_dfm_hyperparameter_is_named():
    from wsolax.config import load_config
    from wsolax.registry import build_model

    cfg = load_config("configs/synthetic_dfm.py", ["--config.model.methods.dfm.omgea=0.2"])
    with pytest.raises(ValueError, match="model.methods.dfm.omgea"):
        build_model(cfg)
