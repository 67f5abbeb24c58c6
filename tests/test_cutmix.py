"""CutMix as the CVPR'20 benchmark's code does it (wsolevaluation `wsol/method/cutmix.py` and
`main.py`): the box by hand and against a literal copy of the reference's `rand_bbox` arithmetic,
the pasted pixels and the area-ratio labels, the loss lam CE(a) + (1 - lam) CE(b) by hand, the
permutation, the apply probability and the Beta draw over many keys at 5 sigma, gradients,
jit/vmap, dtype, and train steps on the tiny model and the benchmark's three backbones (with HaS
composed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax import registry
from wsolax.config import load_config
from wsolax.methods.api import make_hparams
from wsolax.methods.cutmix import (
    Box, CutMixHparams, box_mask, cut_box, cutmix, kept_fraction, label_distribution, transform)
from wsolax.methods.has import hide_and_seek
from wsolax.models.wsol_model import init_key
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step


def _reference_rand_bbox(size_nchw, lam, cx, cy):
    """The reference's `rand_bbox` with its two `np.random.randint` draws given (its `w` is dim 2
    of NCHW, i.e. the height; `cx` is a row)."""
    w = size_nchw[2]
    h = size_nchw[3]
    cut_rat = np.sqrt(1. - lam)
    cut_w = int(w * cut_rat)
    cut_h = int(h * cut_rat)
    bbx1 = np.clip(cx - cut_w // 2, 0, w)
    bby1 = np.clip(cy - cut_h // 2, 0, h)
    bbx2 = np.clip(cx + cut_w // 2, 0, w)
    bby2 = np.clip(cy + cut_h // 2, 0, h)
    return bbx1, bby1, bbx2, bby2


def _distinct_images(b, h, w, c=2, dtype=jnp.float32):
    """Image i is constant i + 1: where a pixel came from is read off its value."""
    return jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None],
                            (b, h, w, c)).astype(dtype)


def _box(b: Box):
    return tuple(int(v) for v in b)


def _within_5_sigma(hits, n, p):
    assert abs(hits - n * p) < 5 * np.sqrt(n * p * (1 - p)), (hits, n, p)


# ---------------------------------------------------------------------------- the box by hand

@pytest.mark.parametrize("lam, center, size, box, kept", [
    # 10x10, lam 0.5: side 10 sqrt(0.5) = 7.07 -> 7, halves 3 (the odd side loses a pixel).
    (0.5, (5, 5), (10, 10), (2, 2, 8, 8), 1 - 36 / 100),
    # ... centred at (1, 8): rows clip at 0 (1 - 3), columns at 10 (8 + 3 = 11).
    (0.5, (1, 8), (10, 10), (0, 5, 4, 10), 1 - 20 / 100),
    # 8x12, lam 0.75: sqrt 0.5 exactly -> 4 rows, 6 columns, halves 2 and 3; the corner clips.
    (0.75, (0, 11), (8, 12), (0, 8, 2, 12), 1 - 8 / 96),
    # lam 1: a zero side, an empty box at the centre, nothing mixed.
    (1.0, (4, 3), (8, 8), (4, 3, 4, 3), 1.0),
    # lam 0: the full side, halves 4 around (0, 0): the top-left quarter.
    (0.0, (0, 0), (8, 8), (0, 0, 4, 4), 1 - 16 / 64),
])
def test_the_box_and_the_corrected_lam_by_hand(lam, center, size, box, kept):
    b = cut_box(lam, *center, *size)
    assert _box(b) == box  # (top, left, bottom, right)
    assert float(kept_fraction(b, *size)) == pytest.approx(kept, abs=1e-7)
    mask = np.asarray(box_mask(b, *size))
    assert mask.sum() == (box[2] - box[0]) * (box[3] - box[1])
    if mask.any():
        assert mask[box[0], box[1]] and mask[box[2] - 1, box[3] - 1]


def test_the_box_matches_the_reference_arithmetic_on_many_draws():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(5, 40, 2))
        lam = float(rng.uniform())
        cx, cy = int(rng.integers(h)), int(rng.integers(w))
        # Skip the ~1e-6-probable draws where float32 and float64 truncate differently.
        if min(abs(h * np.sqrt(1 - lam) - round(h * np.sqrt(1 - lam))),
               abs(w * np.sqrt(1 - lam) - round(w * np.sqrt(1 - lam)))) < 1e-4:
            continue
        ref = _reference_rand_bbox((4, 3, h, w), lam, cx, cy)
        assert _box(cut_box(lam, cx, cy, h, w)) == tuple(int(v) for v in ref), (h, w, lam, cx, cy)


# ------------------------------------------------------------ pasted pixels and mixed labels

def test_pasted_pixels_and_labels_equal_the_area_ratio():
    b, h, w, k = 6, 12, 10, 5
    images = _distinct_images(b, h, w)
    labels = jnp.array([0, 1, 2, 3, 4, 0])
    for seed in range(8):
        out, mixed, draw = cutmix(jax.random.key(seed), images, labels, num_classes=k)
        out, mixed, perm = np.asarray(out), np.asarray(mixed), np.asarray(draw.permutation)
        assert bool(draw.applied)
        # The reference's paste, literally (NCHW): x[:, :, b1:b2, c1:c2] = x[perm, :, ...].
        top, left, bottom, right = _box(draw.box)
        ref = np.asarray(images).transpose(0, 3, 1, 2).copy()
        ref[:, :, top:bottom, left:right] = ref[perm, :, top:bottom, left:right]
        np.testing.assert_array_equal(out, ref.transpose(0, 2, 3, 1))
        # One box for the whole batch: every image that received another's pixels changed at
        # the same place.
        changed = out[..., 0] != np.asarray(images)[..., 0]
        moved = perm != np.arange(b)
        for i in range(b):
            assert changed[i].any() == (moved[i] and (bottom > top) and (right > left))
            if moved[i]:
                np.testing.assert_array_equal(changed[i], changed[np.argmax(moved)])
        # The labels: each image's own class weighs the fraction of its own pixels left, its
        # partner's class the rest (measured from the pixel values, not from lam).
        for i in range(b):
            own = np.mean(out[i, ..., 0] == i + 1) if moved[i] else 1.0
            want = np.zeros(k)
            want[int(labels[i])] += own
            want[int(labels[perm[i]])] += 1 - own
            np.testing.assert_allclose(mixed[i], want, atol=1e-6)
        assert float(draw.lam) == pytest.approx(1 - (bottom - top) * (right - left) / (h * w))
        np.testing.assert_allclose(mixed.sum(1), 1.0, rtol=1e-6)


def test_labels_that_already_are_distributions_are_mixed_linearly():
    images = _distinct_images(4, 8, 8)
    soft = jnp.asarray([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    _, mixed, draw = cutmix(jax.random.key(3), images, soft, num_classes=3)
    lam, perm = float(draw.lam), np.asarray(draw.permutation)
    np.testing.assert_allclose(np.asarray(mixed),
                               lam * np.asarray(soft) + (1 - lam) * np.asarray(soft)[perm],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="neither class indices nor distributions"):
        label_distribution(jnp.ones((4, 5)), 3)


def test_identity_at_evaluation_and_the_class_count_is_required():
    hp = CutMixHparams()
    batch = {"image": _distinct_images(2, 8, 8), "label": jnp.array([0, 1])}
    assert transform(jax.random.key(0), batch, hp, train=False, num_classes=3) is batch
    assert transform(jax.random.key(0), batch, hp, train=False, num_classes=None) is batch
    with pytest.raises(ValueError, match="needs the class count"):
        transform(jax.random.key(0), batch, hp, train=True, num_classes=None)
    out = transform(jax.random.key(0), batch, hp, train=True, num_classes=3)
    assert set(out) == set(batch) and out["label"].shape == (2, 3)


# ------------------------------------------------------------------- statistics (5 sigma)

@jax.jit
def _many(keys, images, labels, beta, prob):
    # beta and prob traced: one compilation serves every statistics test of a batch shape.
    return jax.vmap(lambda k: cutmix(k, images, labels, num_classes=4, beta=beta, prob=prob))(keys)


def _draws(n_keys, b=8, h=16, w=16, beta=1.0, prob=1.0):
    return _many(jax.random.split(jax.random.key(11), n_keys), _distinct_images(b, h, w),
                 jnp.arange(b) % 4, beta, prob)


def test_the_permutation_is_a_uniform_permutation():
    n, b = 1000, 8
    _, _, draw = _draws(n, b)
    perm = np.asarray(draw.permutation)
    np.testing.assert_array_equal(np.sort(perm, axis=1), np.tile(np.arange(b), (n, 1)))
    # Image 0's partner is each image with probability 1/8; fixed points occur.
    for j in range(b):
        _within_5_sigma((perm[:, 0] == j).sum(), n, 1 / b)
    assert len({p.tobytes() for p in perm}) > n // 2


def test_the_apply_probability_over_many_keys():
    n, p = 1000, 0.3
    images_out, mixed, draw = _draws(n, prob=p)
    applied = np.asarray(draw.applied)
    _within_5_sigma(applied.sum(), n, p)
    originals = np.asarray(_distinct_images(8, 16, 16))
    onehot = np.eye(4)[np.arange(8) % 4]
    for i in np.flatnonzero(~applied)[:50]:
        # Not applied: the batch is untouched and the labels are one-hot.
        np.testing.assert_array_equal(np.asarray(images_out[i]), originals)
        np.testing.assert_array_equal(np.asarray(mixed[i]), onehot)
        assert float(draw.lam[i]) == 1.0
    # prob 1 and 0, the ends.
    assert np.asarray(_draws(50, prob=1.0)[2].applied).all()
    assert not np.asarray(_draws(50, prob=0.0)[2].applied).any()


@pytest.mark.parametrize("beta, below, cdf", [
    (1.0, 0.25, 0.25),  # Beta(1, 1) is uniform
    (0.5, 0.1, 2 / np.pi * np.arcsin(np.sqrt(0.1))),  # Beta(1/2, 1/2): the arcsine law
])
def test_lam_is_one_beta_draw_per_batch(beta, below, cdf):
    n = 1000
    _, _, draw = _draws(n, beta=beta)
    _within_5_sigma((np.asarray(draw.lam_drawn) < below).sum(), n, cdf)


def test_the_box_centre_is_uniform_over_the_pixels():
    n = 1000
    _, _, draw = _draws(n, h=16, w=12)
    rows, cols = (np.asarray(c) for c in draw.center)
    assert rows.min() >= 0 and rows.max() == 15 and cols.min() >= 0 and cols.max() == 11
    _within_5_sigma((rows < 4).sum(), n, 4 / 16)
    _within_5_sigma((cols < 3).sum(), n, 3 / 12)


# ------------------------------------------------------------------------ autodiff, jit, dtype

def test_gradient_routes_each_output_pixel_to_its_source():
    b, h, w = 4, 8, 8
    images = jax.random.normal(jax.random.key(0), (b, h, w, 1))
    weights = jax.random.normal(jax.random.key(1), (b, h, w, 1))
    key = jax.random.key(4)
    grad = jax.grad(lambda x: jnp.sum(cutmix(key, x, jnp.arange(b), num_classes=4)[0] * weights))
    g = np.asarray(grad(images))
    _, _, draw = cutmix(key, images, jnp.arange(b), num_classes=4)
    perm, mask = np.asarray(draw.permutation), np.asarray(box_mask(draw.box, h, w))
    want = np.zeros((b, h, w, 1))
    wt = np.asarray(weights)
    for i in range(b):
        for r in range(h):
            for c in range(w):
                src = perm[i] if mask[r, c] else i
                want[src, r, c, 0] += wt[i, r, c, 0]
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6)


def test_jit_and_vmap_agree_with_eager():
    images = jax.random.normal(jax.random.key(0), (4, 12, 12, 3))
    labels = jnp.array([0, 1, 2, 1])
    key = jax.random.key(9)
    single = jax.jit(lambda k, x: cutmix(k, x, labels, num_classes=3))
    eager = cutmix(key, images, labels, num_classes=3, beta=1.0, prob=1.0)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(single(key, images))):
        # The label mix may fuse into one multiply-add under jit: equal to float32 rounding.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # vmap over batches: each batch draws its own box and permutation.
    keys = jax.random.split(key, 3)
    stacked = jnp.stack([images, images + 1, images * 2])
    mapped = jax.vmap(lambda k, x: cutmix(k, x, labels, num_classes=3))(keys, stacked)
    for i in range(3):
        one = single(keys[i], stacked[i])
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(mapped)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-6, atol=1e-7)


def test_same_key_same_mix_other_keys_differ():
    images = _distinct_images(4, 16, 16)
    labels = jnp.arange(4)
    a = cutmix(jax.random.key(1), images, labels, num_classes=4)
    b = cutmix(jax.random.key(1), images, labels, num_classes=4)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    outs = {np.asarray(cutmix(jax.random.key(k), images, labels, num_classes=4)[0]).tobytes()
            for k in range(10)}
    assert len(outs) >= 9


def test_bfloat16_images_keep_their_dtype():
    images = _distinct_images(4, 8, 8, dtype=jnp.bfloat16)
    out, mixed, _ = cutmix(jax.random.key(2), images, jnp.arange(4), num_classes=4)
    assert out.dtype == jnp.bfloat16 and mixed.dtype == jnp.float32
    assert set(np.unique(np.asarray(out, np.float32))) <= {1.0, 2.0, 3.0, 4.0}


# ------------------------------------------------------------------- hyperparameters, configs

@pytest.mark.parametrize("values, field", [
    ({"beta": 0.0}, "beta"), ({"beta": -1.0}, "beta"), ({"prob": 1.5}, "prob"),
    ({"prob": -0.5}, "prob")])
def test_bad_hyperparameters_are_named(values, field):
    with pytest.raises(ValueError, match=rf"config key 'model\.methods\.cutmix\.{field}'"):
        make_hparams(registry.get_method("cutmix"), values)


def test_defaults_and_the_synthetic_config():
    hp = make_hparams(registry.get_method("cutmix"), {})
    assert (hp.beta, hp.prob) == (1.0, 1.0)  # --cutmix_beta, --cutmix_prob
    cfg = load_config("configs/synthetic_cutmix.py")
    (selected,) = registry.selected_methods(cfg.model)
    assert selected.method.name == "cutmix" and cfg.model.inserts == ()
    assert cfg.model.head == "gap_linear" and (selected.hparams.beta, selected.hparams.prob) == (
        1.0, 1.0)
    variant = load_config("configs/synthetic_cutmix.py:runlocal,beta=0.5,prob=0.5")
    hp = registry.selected_methods(variant.model)[0].hparams
    assert (hp.beta, hp.prob) == (0.5, 0.5) and variant.workdir != cfg.workdir
    finetune = load_config("configs/synthetic_cutmix.py:finetune")
    assert finetune.model.init_from == "runs/synthetic_cam/backbone.safetensors"
    assert registry.selected_methods(finetune.model)[0].method.name == "cutmix"


# --------------------------------------------------------------------------- train steps

def _log_softmax(logits):
    m = logits.max(1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))


def _setup(methods: dict, k: int = 5, size: int = 32):
    cfg = load_config("configs/synthetic_cam.py", ["--config.model.width=4"])
    cfg.data.num_classes = k
    for name, values in methods.items():
        cfg.model.methods[name] = values
    model = registry.build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    state = jax.jit(lambda k: init_state(model, tx, k, (1, size, size, 3)))(init_key(0))
    return cfg, model, tx, state


@pytest.mark.slow
def test_the_loss_is_lam_ce_a_plus_one_minus_lam_ce_b_by_hand():
    cfg, model, tx, state = _setup({"cutmix": {}})
    labels = jnp.array([0, 1, 2, 3, 4, 0])
    batch = {"image": jax.random.normal(jax.random.key(0), (6, 32, 32, 3)), "label": labels}
    step = jax.jit(make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10)))
    new_state, m = step(state, batch, jax.random.key(1))
    assert int(new_state.step) == 1 and np.isfinite(float(m["grad_norm"]))
    # By hand, with the key the step gives the transform (fold in the step, split off the
    # transforms' part): the mixed images through the model, then the benchmark's main.py loss.
    transform_key, dropout_key = jax.random.split(jax.random.fold_in(jax.random.key(1), 0))
    mixed, _, draw = cutmix(transform_key, batch["image"], labels, num_classes=5)
    lam, perm = float(draw.lam), np.asarray(draw.permutation)
    assert 0 < lam < 1 and (perm != np.arange(6)).any()
    out, _ = jax.jit(lambda v, x, k: model.apply(v, x, train=True, rngs={"dropout": k},
                                                 mutable=["batch_stats"]))(
        {"params": state.params, "batch_stats": state.batch_stats}, mixed, dropout_key)
    logp = _log_softmax(np.asarray(out["logits"], np.float64))
    y = np.asarray(labels)
    ce_a = -np.mean(logp[np.arange(6), y])
    ce_b = -np.mean(logp[np.arange(6), y[perm]])
    assert float(m["loss"]) == pytest.approx(lam * ce_a + (1 - lam) * ce_b, rel=1e-5)
    # The accuracy compares with the original labels (main.py: pred == target).
    acc = np.mean(logp.argmax(1) == y)
    assert float(m["accuracy"]) == pytest.approx(acc)


@pytest.mark.slow
def test_cutmix_then_has_compose_in_one_step():
    cfg, model, tx, state = _setup({"cutmix": {}, "has": {"grid_size": 4}})
    assert [s.method.name for s in registry.selected_methods(cfg.model)] == ["cutmix", "has"]
    labels = jnp.array([0, 1, 2, 3])
    batch = {"image": jax.random.normal(jax.random.key(0), (4, 32, 32, 3)), "label": labels}
    step = jax.jit(make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10)))
    _, m = step(state, batch, jax.random.key(1))
    # By hand: the transforms' key split in two, in method-name order (cutmix, then has).
    transform_key, dropout_key = jax.random.split(jax.random.fold_in(jax.random.key(1), 0))
    k_cutmix, k_has = jax.random.split(transform_key, 2)
    mixed, dist, _ = cutmix(k_cutmix, batch["image"], labels, num_classes=5)
    hidden = hide_and_seek(k_has, mixed, grid_size=4, drop_rate=0.5)
    out, _ = model.apply({"params": state.params, "batch_stats": state.batch_stats}, hidden,
                         train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    logp = _log_softmax(np.asarray(out["logits"], np.float64))
    want = -np.mean(np.sum(np.asarray(dist, np.float64) * logp, axis=1))
    assert float(m["loss"]) == pytest.approx(want, rel=1e-5)
