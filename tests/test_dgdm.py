"""Contract tests for DGDM: identity at eval, determinism, branch and channel-drop statistics,
masks by hand (hot spot, background, block footprint at the border, channel rule), gradients,
jit/vmap, dtype, module and config wiring. Expected values come from hand computation or the
literal numpy oracles below, never from the code under test."""

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.methods.dgdm import (DGDM, cagd_mask, dgdm, dropblock_mask, resolve_block_size,
                                 sagd_drop_mask)

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics

# Compiling the threefry draws dominates these tests on the shared CPU, so most tests call one
# jitted layer whose float hyperparameters are traced (the layer accepts them as arrays): one
# compile per input shape and block size instead of one per setting.
_jdgdm = jax.jit(dgdm, static_argnames=("block_size", "block_divisor", "train", "per_sample"))

# Forced spatial drop branch, no channel dropout: isolates SAGD's drop mask.
SAGD_ONLY = dict(drop_rate=1.0, alpha=0.0)


def _x(seed=0, shape=(4, 6, 6, 8)):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _from_attention(att):
    """A (4, H, W, 8) batch of identical images whose channel mean is `att` (channels alternate
    +-0.5 around it), so all channel GAPs are within 1 of each other."""
    att = np.asarray(att, np.float64)
    x = att[None, :, :, None] + np.array([0.5, -0.5] * 4)
    return jnp.asarray(np.repeat(x, 4, axis=0), jnp.float32)


def _block_oracle(seeds, k):
    """Literal rule: a seed at (i, j) removes rows i-(k-1)//2 .. i+k//2 (same for columns),
    clipped at the border."""
    h, w = seeds.shape
    keep = np.ones((h, w))
    for i in range(h):
        for j in range(w):
            if seeds[i, j]:
                for r in range(i - (k - 1) // 2, i + k // 2 + 1):
                    for c in range(j - (k - 1) // 2, j + k // 2 + 1):
                        if 0 <= r < h and 0 <= c < w:
                            keep[r, c] = 0.0
    return keep


def test_identity_at_eval_bit_exact():
    x = _x()
    assert dgdm(None, x, train=False) is x
    y = DGDM().apply({}, x, train=False)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_module_fields_are_the_function_hyperparameters_with_the_same_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(DGDM)
              if f.name not in ("parent", "name", "dtype")}
    params = {n: p.default for n, p in inspect.signature(dgdm).parameters.items()
              if p.kind is p.KEYWORD_ONLY and n != "train"}
    assert fields == params
    assert (fields["drop_rate"], fields["alpha"], fields["beta"], fields["block_size"]) == \
        (0.75, 0.5, 3.0, 3)


def test_block_footprint_by_hand_at_the_border():
    seeds = np.zeros((1, 5, 5), bool)
    seeds[0, 0, 0] = seeds[0, 4, 4] = True
    got = {k: np.asarray(dropblock_mask(jnp.asarray(seeds), k))[0] for k in (1, 2, 3, 4)}
    np.testing.assert_array_equal(got[1], 1 - seeds[0])
    # k=2: the seed is the top-left of its block; at the bottom-right corner only the seed is left.
    exp2 = np.ones((5, 5))
    exp2[0:2, 0:2] = 0
    exp2[4, 4] = 0
    np.testing.assert_array_equal(got[2], exp2)
    # k=3: centred, clipped to 2x2 at both corners.
    exp3 = np.ones((5, 5))
    exp3[0:2, 0:2] = 0
    exp3[3:5, 3:5] = 0
    np.testing.assert_array_equal(got[3], exp3)
    # k=4: rows i-1 .. i+2 -> 0..2 at the top-left corner, 3..4 at the bottom-right.
    exp4 = np.ones((5, 5))
    exp4[0:3, 0:3] = 0
    exp4[3:5, 3:5] = 0
    np.testing.assert_array_equal(got[4], exp4)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_block_footprint_matches_literal_oracle(k):
    seeds = np.random.default_rng(k).random((3, 7, 6)) < 0.08
    got = np.asarray(dropblock_mask(jnp.asarray(seeds), k))
    for b in range(3):
        np.testing.assert_array_equal(got[b], _block_oracle(seeds[b], k))


def test_rectangular_block_and_adaptive_size():
    seeds = np.zeros((1, 6, 6), bool)
    seeds[0, 2, 2] = True
    got = np.asarray(dropblock_mask(jnp.asarray(seeds), (1, 3)))[0]
    exp = np.ones((6, 6))
    exp[2, 1:4] = 0
    np.testing.assert_array_equal(got, exp)
    # Table 1 "Adap_7" on VGG maps: 28 -> 4, 14 -> 2; our tiny 8x8 map -> 1 (floor, at least 1).
    assert resolve_block_size(28, 28, 3, 7) == (4, 4)
    assert resolve_block_size(14, 14, 3, 7) == (2, 2)
    assert resolve_block_size(8, 6, 3, 7) == (1, 1)
    assert resolve_block_size(8, 8, 3, 0) == (3, 3)


def test_one_hot_spot_is_removed_as_a_block():
    # Attention 1 everywhere, 10 at (2, 3): delta_high 0.8 -> threshold 8, only the hot spot is a
    # seed; delta_low 0.05 -> threshold 0.5, no background. Block 3 removes rows 1-3, cols 2-4.
    # (GAPs are 1.25 +- 0.5: beta 3 x 0.75 > 1.75 would drop channels, hence alpha 0.)
    att = np.ones((6, 6))
    att[2, 3] = 10.0
    x = _from_attention(att)
    # Eager on purpose: the layer works without jit too.
    y = dgdm(jax.random.key(0), x, block_size=3, delta_low=0.05, delta_high=0.8, **SAGD_ONLY)
    keep = np.ones((6, 6))
    keep[1:4, 2:5] = 0
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x) * keep[None, :, :, None])


def test_background_and_discriminative_seeds_both_dropped():
    # Max 10 at (0, 0) (corner: the k=2 block stays inside), 0 at (5, 5) (corner: the block is
    # clipped to the seed), 0.2 at (3, 1) (below 0.05 x 10 = 0.5: background), rest 1.
    att = np.ones((6, 6))
    att[0, 0], att[5, 5], att[3, 1] = 10.0, 0.0, 0.2
    got = np.asarray(sagd_drop_mask(jnp.asarray(att[None]), delta_low=0.05, delta_high=0.8,
                                    block_size=2))[0]
    exp = np.ones((6, 6))
    exp[0:2, 0:2] = 0
    exp[5, 5] = 0
    exp[3:5, 1:3] = 0
    np.testing.assert_array_equal(got, exp)
    # delta_low = 0 (Table 1 "M_drop2_stage1"): only the discriminative block goes.
    got = np.asarray(sagd_drop_mask(jnp.asarray(att[None]), delta_low=0.0, delta_high=0.8,
                                    block_size=2))[0]
    exp = np.ones((6, 6))
    exp[0:2, 0:2] = 0
    np.testing.assert_array_equal(got, exp)


def test_importance_branch_is_sigmoid_of_channel_mean():
    att = np.linspace(-3.0, 3.0, 36).reshape(6, 6)
    x = _from_attention(att)
    y = _jdgdm(jax.random.key(0), x, drop_rate=0.0, alpha=0.0)
    sig = 1 / (1 + np.exp(-att))
    np.testing.assert_allclose(np.asarray(y), np.asarray(x) * sig[None, :, :, None], rtol=1e-5,
                               atol=1e-6)


def test_block_size_one_without_background_is_adl_drop_mask():
    # The paper's remark (Sec. 3.3) that block_size 1 reduces to pixel dropout: with no ties at the
    # threshold this is exactly ADL's drop mask with gamma = delta_high.
    from wsolax.methods.adl import adl

    x = jnp.abs(_x(9))
    a = _jdgdm(jax.random.key(0), x, block_size=1, delta_low=0.0, delta_high=0.8, **SAGD_ONLY)
    b = adl(jax.random.key(0), x, drop_rate=1.0, gamma=0.8)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_channel_rule_by_hand():
    # GAPs [1, 2, 3, 2.9, 10, -2.5, 4, 5]: magnitudes, min 1, beta 3 -> threshold 3; strictly
    # below: channels 0, 1, 3 and 5 (|-2.5|); channel 2 sits on the threshold and is kept.
    s = np.array([[1.0, 2.0, 3.0, 2.9, 10.0, -2.5, 4.0, 5.0]])
    rule = np.array([[0, 0, 1, 0, 1, 0, 1, 1]])
    cagd = jax.jit(cagd_mask)
    always = np.asarray(cagd(jax.random.key(0), jnp.asarray(np.abs(s)), alpha=1.0, beta=3.0))
    np.testing.assert_array_equal(always, rule)
    never = np.asarray(cagd(jax.random.key(0), jnp.asarray(np.abs(s)), alpha=0.0, beta=3.0))
    np.testing.assert_array_equal(never, np.ones((1, 8)))
    # A zero channel makes the threshold 0: nothing is strictly below it, nothing is dropped.
    z = np.asarray(cagd(jax.random.key(0), jnp.asarray([[0.0, 1, 5, 1, 1, 1, 1, 1]]), alpha=1.0,
                        beta=3.0))
    np.testing.assert_array_equal(z, np.ones((1, 8)))
    # Through the layer: constant channels, importance branch (drop_rate 0), alpha 1.
    x = np.broadcast_to(s[:, None, None, :], (4, 6, 6, 8)).astype(np.float32)
    y = np.asarray(_jdgdm(jax.random.key(1), jnp.asarray(x), drop_rate=0.0, alpha=1.0, beta=3.0))
    sig = 1 / (1 + np.exp(-s.mean()))
    np.testing.assert_allclose(y, x * sig * rule, rtol=1e-6)


def test_same_key_same_output_different_keys_differ():
    x = jnp.abs(_x(1))
    a = _jdgdm(jax.random.key(3), x, drop_rate=0.5)
    b = _jdgdm(jax.random.key(3), x, drop_rate=0.5)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    outs = {np.asarray(_jdgdm(jax.random.key(k), x, drop_rate=0.5, alpha=0.0)).tobytes()
            for k in range(20)}
    assert len(outs) == 2  # per batch, no channel drops: exactly the two branches occur
    outs = {np.asarray(_jdgdm(jax.random.key(k), x, drop_rate=0.5)).tobytes() for k in range(20)}
    assert len(outs) > 2  # channel drops add further choices


@pytest.mark.parametrize("per_sample", [False, True])
def test_drop_branch_rate(per_sample):
    # The drop branch is taken with probability 0.75: over n independent choices the count is
    # Binomial(n, 0.75); a 5-sigma bound fails a correct layer with probability ~6e-7.
    x = jnp.abs(_x(2)) + 1.0  # positive: sigmoid(att) in (0.5, 1), never equal to the {0, 1} mask
    dropped = np.asarray(_jdgdm(jax.random.key(0), x, **SAGD_ONLY))
    num_keys = 400 if not per_sample else 200
    per_image = np.stack([
        np.all(np.asarray(_jdgdm(jax.random.key(k), x, drop_rate=0.75, alpha=0.0,
                                 per_sample=per_sample)) == dropped, axis=(1, 2, 3))
        for k in range(num_keys)])  # (keys, batch)
    if not per_sample:
        assert np.all(per_image.all(1) | ~per_image.any(1))  # one choice for the whole batch
        per_image = per_image[:, :1]
    n, hits = per_image.size, per_image.sum()
    assert n == (400 if not per_sample else 800)
    assert abs(hits - 0.75 * n) < 5 * np.sqrt(n * 0.75 * 0.25), (hits, n)


def test_channel_drop_rate_and_only_low_channels():
    # GAPs per channel [1, 2, 2.5, 4, 8, 8, 8, 8] in every image: beta 3 -> threshold 3,
    # candidates 0-2. Each is dropped with probability alpha = 0.5, independently per image and
    # channel; channels 3-7 never. 300 keys x 4 images x 3 candidates = 3600 Bernoulli(0.5) draws,
    # 5-sigma bound as above.
    s = np.array([1.0, 2.0, 2.5, 4.0, 8.0, 8.0, 8.0, 8.0])
    x = jnp.asarray(np.broadcast_to(s, (4, 6, 6, 8)), jnp.float32)
    zeroed = np.stack([
        np.all(np.asarray(_jdgdm(jax.random.key(k), x, drop_rate=0.0, alpha=0.5)) == 0,
               axis=(1, 2))
        for k in range(300)])  # (keys, batch, channels)
    assert not zeroed[..., 3:].any()
    n, hits = zeroed[..., :3].size, zeroed[..., :3].sum()
    assert n == 3600
    assert abs(hits - 0.5 * n) < 5 * np.sqrt(n * 0.25), (hits, n)
    # Independence across images: the batch does not share one channel mask.
    assert (zeroed[:, 0] != zeroed[:, 1]).any()


def test_gradients_flow_through_kept_positions_only():
    # Drop branch: y = x * keep[h, w] * channel[c] with piecewise-constant masks, so the gradient of
    # sum(y) is exactly the product of the two masks.
    att = np.ones((6, 6))
    att[2, 3] = 10.0
    x = np.repeat(np.repeat(att[None, :, :, None], 8, axis=-1), 4, axis=0)
    x[..., 0] *= 0.1
    # Channel mean: 0.8875 with 8.875 at (2, 3) -> only the hot spot exceeds 0.8 x max, nothing is
    # below 0.05 x max. GAPs: 0.125 (channel 0), 1.25; beta 3 -> threshold 0.375: channel 0 only.
    x = jnp.asarray(x, jnp.float32)
    grad = jax.jit(jax.grad(
        lambda v, rate, alpha: dgdm(jax.random.key(1), v, drop_rate=rate, alpha=alpha).sum()))
    g = np.asarray(grad(x, 1.0, 1.0))
    keep = np.ones((6, 6))
    keep[1:4, 2:5] = 0
    channel = np.array([0.0] + [1.0] * 7)
    np.testing.assert_array_equal(g, np.broadcast_to(keep[None, :, :, None] * channel, g.shape))
    # Importance branch: the gradient reaches every position (sigmoid map is differentiable).
    g = np.asarray(grad(x, 0.0, 0.0))
    assert np.isfinite(g).all() and (g > 0).all()


def test_jit_and_vmap():
    x = _x(5)
    keys = jax.random.split(jax.random.key(0), 3)
    xs = jnp.stack([x, x * 2, x - 1])
    out = jax.jit(jax.vmap(lambda k, v: dgdm(k, v, drop_rate=0.5)))(keys, xs)
    assert out.shape == xs.shape
    for i in range(3):
        np.testing.assert_allclose(out[i], _jdgdm(keys[i], xs[i], drop_rate=0.5), rtol=1e-6)


def test_dtype_preserved_bfloat16():
    x = jnp.abs(_x(6))
    y16 = _jdgdm(jax.random.key(0), x.astype(jnp.bfloat16), drop_rate=0.0, alpha=0.0)
    assert y16.dtype == jnp.bfloat16
    y32 = _jdgdm(jax.random.key(0), x, drop_rate=0.0, alpha=0.0)
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), rtol=3e-2, atol=3e-2)


def test_module_draws_from_the_dropout_stream():
    x = jnp.abs(_x(7))
    m = DGDM(drop_rate=0.5)
    apply = jax.jit(lambda k: m.apply({}, x, train=True, rngs={"dropout": k}))
    a, c = np.asarray(apply(jax.random.key(11))), np.asarray(apply(jax.random.key(11)))
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, c)
    outs = {np.asarray(apply(jax.random.key(k))).tobytes() for k in range(8)}
    assert len(outs) > 1
    with pytest.raises(Exception):
        m.apply({}, x, train=True)  # no key: refuses instead of silently using a global RNG


def test_dgdm_placed_by_config_is_identity_at_eval_and_active_in_training():
    from wsolax.config import load_config
    from wsolax.registry import build_model
    from wsolax.models.wsol_model import init_key

    cfg = load_config("configs/synthetic_dgdm.py", ["--config.model.width=4"])
    plain_cfg = load_config("configs/synthetic_cam.py", ["--config.model.width=4"])
    assert [s for s, _ in cfg.model.inserts] == ["stage1", "stage2", "stage3", "stage4"]
    with_dgdm, plain = build_model(cfg), build_model(plain_cfg)
    x = jnp.asarray(np.random.default_rng(8).normal(size=(2, 32, 32, 3)), jnp.float32)
    # Random parameters from numpy instead of a jitted init: compiling the initialisers' threefry
    # draws would double this test's time, and any parameters serve to compare the two models.
    shapes = jax.eval_shape(lambda: plain.init(init_key(0), x, train=False))
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.normal(scale=0.3, size=s.shape), s.dtype), shapes)
    eval_a = jax.jit(lambda v: with_dgdm.apply(v, x, train=False)["logits"])(variables)
    eval_b = jax.jit(lambda v: plain.apply(v, x, train=False)["logits"])(variables)
    np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
    train_a = jax.jit(lambda v, k: with_dgdm.apply(v, x, train=True, rngs={"dropout": k})["logits"])
    outs = [np.asarray(train_a(variables, jax.random.key(k))) for k in range(3)]
    assert any(not np.array_equal(o, np.asarray(eval_b)) for o in outs)


def test_unknown_dgdm_hyperparameter_is_named():
    from wsolax.config import load_config
    from wsolax.registry import build_model

    cfg = load_config("configs/synthetic_dgdm.py", ["--config.model.methods.dgdm.blocksize=5"])
    with pytest.raises(ValueError, match="model.methods.dgdm.blocksize"):
        build_model(cfg)


def test_table1_variants_and_overrides_load():
    from wsolax.config import load_config

    hp = lambda c: dict(c.model.methods.dgdm)  # noqa: E731
    base = load_config("configs/synthetic_dgdm.py")
    assert hp(base)["block_size"] == 2 and hp(base)["alpha"] == 0.5 and hp(base)["beta"] == 3.0
    c = load_config("configs/synthetic_dgdm.py:runlocal,block=3")
    assert hp(c)["block_size"] == 3 and c.data.synthetic.num_train == 128
    assert load_config("configs/synthetic_dgdm.py:adap=7").model.methods.dgdm.block_divisor == 7
    s1 = hp(load_config("configs/synthetic_dgdm.py:components=stage1"))
    s2 = hp(load_config("configs/synthetic_dgdm.py:components=stage2"))
    assert (s1["delta_low"], s1["alpha"]) == (0.0, 0.0)
    assert s2["delta_low"] > 0 and s2["alpha"] == 0.0
    assert hp(load_config("configs/synthetic_dgdm.py:beta=2.5"))["beta"] == 2.5
    high = load_config("configs/synthetic_dgdm.py:inserts=high")
    assert tuple(high.model.inserts) == (("stage3", "dgdm"), ("stage4", "dgdm"))
    o = load_config("configs/synthetic_dgdm.py", [
        "--config.model.methods.dgdm.block_size=5",
        "--config.model.inserts=(('stage4', 'dgdm'),)"])
    assert hp(o)["block_size"] == 5 and tuple(o.model.inserts) == (("stage4", "dgdm"),)
    with pytest.raises(ValueError, match="blok"):
        load_config("configs/synthetic_dgdm.py:blok=3")
