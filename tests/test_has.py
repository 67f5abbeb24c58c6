"""Hide-and-Seek as the CVPR'20 benchmark's code does it (wsolevaluation `wsol/method/has.py`):
hidden pixels by hand, a literal oracle of the reference's loops, the hiding statistics over many
keys at 5 sigma, gradients, jit/vmap, dtype, and train steps on the tiny model and the benchmark's
three backbones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsolax import registry
from wsolax.config import load_config
from wsolax.methods.api import make_hparams
from wsolax.methods.has import (
    HasHparams, draw_hidden_cells, grid_shape, hide_and_seek, hide_cells, transform)
from wsolax.models.wsol_model import init_key
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step


def _reference_has(images_nchw: np.ndarray, grid_size: int, drop_rate: float, draws):
    """The benchmark's loops, literally, with `random.random()` replaced by `next(draws)`."""
    image = images_nchw.copy()
    batch_size, _, height, width = image.shape
    for batch_idx in range(batch_size):
        for x in range(0, width, grid_size):
            for y in range(0, height, grid_size):
                x_end = min(height, x + grid_size)
                y_end = min(height, y + grid_size)
                if next(draws) <= drop_rate:
                    image[batch_idx, :, x:x_end, y:y_end] = 0.
    return image


def _images(shape, seed=0, dtype=jnp.float32):
    # >= 1 everywhere, so a hidden pixel (0) is told apart from a shown one.
    return jnp.asarray(np.random.default_rng(seed).uniform(1.0, 2.0, shape), dtype)


# ------------------------------------------------------------------------- masks by hand

def test_hidden_pixels_by_hand_with_cut_short_border_cells():
    # 5x5 image, 2 px cells: cell rows/cols start at 0, 2, 4; the last row and column of cells
    # are 1 px wide (the reference's min(height, x + grid_size)).
    assert grid_shape(5, 5, 2) == (3, 3)
    cells = np.array([[[True, False, False],
                       [False, False, True],
                       [False, True, True]]])
    expected_hidden = np.array([[1, 1, 0, 0, 0],
                                [1, 1, 0, 0, 0],
                                [0, 0, 0, 0, 1],
                                [0, 0, 0, 0, 1],
                                [0, 0, 1, 1, 1]], bool)
    images = _images((1, 5, 5, 3))
    out = np.asarray(hide_cells(images, jnp.asarray(cells), 2))
    want = np.where(expected_hidden[None, :, :, None], 0.0, np.asarray(images))
    np.testing.assert_array_equal(out, want)  # the fill is 0 on every channel, the rest untouched


def test_a_non_dividing_grid_and_a_batch_of_patterns_by_hand():
    # 7 rows x 6 columns, 4 px cells: 2x2 cells of 4x4, 4x2, 3x4 and 3x2 pixels.
    assert grid_shape(7, 6, 4) == (2, 2)
    cells = jnp.asarray([[[False, True], [False, False]],
                         [[False, False], [True, False]]])
    out = np.asarray(hide_cells(jnp.ones((2, 7, 6, 1)), cells, 4))[..., 0]
    first = np.ones((7, 6))
    first[0:4, 4:6] = 0
    second = np.ones((7, 6))
    second[4:7, 0:4] = 0
    np.testing.assert_array_equal(out, np.stack([first, second]))


def test_the_drawn_cells_match_the_reference_loops():
    # The reference draws one uniform per (image, cell row, cell column), in that loop order, and
    # hides a cell when the draw is <= drop_rate. wsolax draws the same array shape from the key;
    # replaying those draws through the literal loops gives wsolax's output (square images: the
    # reference's swapped height/width names agree there). 30 px with 4 px cells: a 2 px border.
    key = jax.random.key(7)
    images = _images((3, 30, 30, 2), seed=1)
    ours = np.asarray(hide_and_seek(key, images, grid_size=4, drop_rate=0.5))
    draws = np.asarray(jax.random.uniform(key, (3, 8, 8))).ravel()
    ref = _reference_has(np.asarray(images).transpose(0, 3, 1, 2), 4, 0.5, iter(draws))
    np.testing.assert_array_equal(ours, ref.transpose(0, 2, 3, 1))
    hidden = ours[..., 0] == 0
    assert 0 < hidden.mean() < 1
    # Per image: the three patterns differ.
    assert len({h.tobytes() for h in hidden}) == 3


def test_drop_rate_zero_and_one_and_grid_size_zero():
    images = _images((2, 9, 9, 3))
    np.testing.assert_array_equal(
        np.asarray(hide_and_seek(jax.random.key(0), images, grid_size=4, drop_rate=0.0)),
        np.asarray(images))
    assert not np.asarray(hide_and_seek(jax.random.key(0), images, grid_size=4,
                                        drop_rate=1.0)).any()
    # grid_size 0: the reference returns the batch unchanged.
    assert hide_and_seek(jax.random.key(0), images, grid_size=0) is images


def test_identity_at_evaluation():
    hp = HasHparams()
    batch = {"image": _images((2, 8, 8, 3)), "label": jnp.array([0, 1])}
    assert transform(jax.random.key(0), batch, hp, train=False, num_classes=3) is batch
    out = transform(jax.random.key(0), batch, hp, train=True, num_classes=3)
    assert out["label"] is batch["label"] and set(out) == set(batch)
    assert (np.asarray(out["image"]) == 0).any()


# ------------------------------------------------------------------- statistics (5 sigma)

def test_hidden_fraction_per_cell_and_per_image_over_many_keys():
    # drop_rate 0.3, 10x10 images with 4 px cells (3x3 cells, the last row/column 2 px), 4
    # images, 500 keys. Each count below is Binomial(n, p) for a correct HaS; 5 sigma bounds.
    p, n_keys, batch = 0.3, 500, 4
    draw = jax.jit(jax.vmap(lambda k: hide_and_seek(k, jnp.ones((batch, 10, 10, 1)),
                                                    grid_size=4, drop_rate=p)))
    out = np.asarray(draw(jax.random.split(jax.random.key(0), n_keys)))[..., 0]
    cells = out[:, :, ::4, ::4] == 0  # one pixel per cell: (keys, images, 3, 3)
    # The hiding is constant on each cell (cut-short border cells included).
    np.testing.assert_array_equal(out == 0, np.repeat(np.repeat(cells, 4, 2), 4, 3)[:, :, :10, :10])

    def within_5_sigma(hits, n, prob):
        assert abs(hits - n * prob) < 5 * np.sqrt(n * prob * (1 - prob)), (hits, n, prob)

    within_5_sigma(cells.sum(), cells.size, p)
    within_5_sigma(cells[:, :, 2, 2].sum(), n_keys * batch, p)  # the 2x2 px corner cell
    within_5_sigma(cells[:, :, 0, 0].sum(), n_keys * batch, p)  # a full 4x4 px cell
    # Per image, not per batch: two images hide the same cell together with probability p^2
    # (per batch it would be p).
    within_5_sigma((cells[:, 0, 1, 1] & cells[:, 1, 1, 1]).sum(), n_keys, p * p)
    # ... and independently across cells of one image.
    within_5_sigma((cells[:, :, 0, 0] & cells[:, :, 0, 1]).sum(), n_keys * batch, p * p)


# ------------------------------------------------------------------------ autodiff, jit, dtype

def test_gradient_is_one_on_shown_pixels_and_zero_on_hidden_ones():
    images = _images((2, 12, 12, 3), seed=3)
    key = jax.random.key(5)
    grad = np.asarray(jax.grad(lambda x: hide_and_seek(key, x, grid_size=4).sum())(images))
    hidden = np.asarray(hide_and_seek(key, images, grid_size=4)) == 0
    np.testing.assert_array_equal(grad, (~hidden).astype(np.float32))


def test_jit_and_vmap_agree_with_eager():
    images = _images((3, 16, 16, 3), seed=4)
    key = jax.random.key(2)
    eager = hide_and_seek(key, images, grid_size=4, drop_rate=0.5)
    jitted = jax.jit(lambda k, x: hide_and_seek(k, x, grid_size=4, drop_rate=0.5))(key, images)
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))
    keys = jax.random.split(key, 2)
    stacked = jnp.stack([images, images * 1.5])
    mapped = jax.vmap(lambda k, x: hide_and_seek(k, x, grid_size=4))(keys, stacked)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(mapped[i]),
                                      np.asarray(hide_and_seek(keys[i], stacked[i], grid_size=4)))


def test_same_key_same_mask_other_keys_differ():
    images = _images((2, 16, 16, 1))
    a = hide_and_seek(jax.random.key(1), images, grid_size=4)
    b = hide_and_seek(jax.random.key(1), images, grid_size=4)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    outs = {np.asarray(hide_and_seek(jax.random.key(k), images, grid_size=4)).tobytes()
            for k in range(10)}
    assert len(outs) == 10


def test_bfloat16_images_keep_their_dtype():
    images = _images((2, 8, 8, 3), dtype=jnp.bfloat16)
    out = hide_and_seek(jax.random.key(0), images, grid_size=4)
    assert out.dtype == jnp.bfloat16
    shown = np.asarray(out, np.float32) != 0
    np.testing.assert_array_equal(np.asarray(out, np.float32)[shown],
                                  np.asarray(images, np.float32)[shown])


def test_hidden_cells_draw_is_the_documented_uniform():
    cells = draw_hidden_cells(jax.random.key(3), 2, 9, 9, grid_size=4, drop_rate=0.25)
    u = np.asarray(jax.random.uniform(jax.random.key(3), (2, 3, 3)))
    np.testing.assert_array_equal(np.asarray(cells), u < 0.25)


# ------------------------------------------------------------------- hyperparameters, configs

@pytest.mark.parametrize("values, field", [
    ({"grid_size": -1}, "grid_size"), ({"grid_size": 2.5}, "grid_size"),
    ({"drop_rate": 1.5}, "drop_rate"), ({"drop_rate": -0.1}, "drop_rate")])
def test_bad_hyperparameters_are_named(values, field):
    with pytest.raises(ValueError, match=rf"config key 'model\.methods\.has\.{field}'"):
        make_hparams(registry.get_method("has"), values)


def test_defaults_are_the_benchmarks_config_py():
    hp = make_hparams(registry.get_method("has"), {})
    assert (hp.grid_size, hp.drop_rate) == (4, 0.5)  # --has_grid_size, --has_drop_rate


def test_synthetic_config_scales_the_grid_to_its_crops():
    cfg = load_config("configs/synthetic_has.py")
    (selected,) = registry.selected_methods(cfg.model)
    assert selected.method.name == "has" and cfg.model.head == "gap_linear"
    assert cfg.model.inserts == ()
    # 4 px at 224 px crops -> 4 * 64 / 224 = 1.14 -> 1 px at 64 px.
    assert cfg.data.crop_size == 64 and selected.hparams.grid_size == 1
    assert selected.hparams.drop_rate == 0.5
    variant = load_config("configs/synthetic_has.py:runlocal,grid=4,drop=0.25")
    hp = registry.selected_methods(variant.model)[0].hparams
    assert (hp.grid_size, hp.drop_rate) == (4, 0.25)
    assert variant.workdir != cfg.workdir
    # The CAM config's variants pass through: finetune starts from a CAM run's backbone.
    finetune = load_config("configs/synthetic_has.py:finetune")
    assert finetune.model.init_from == "runs/synthetic_cam/backbone.safetensors"
    assert registry.selected_methods(finetune.model)[0].hparams.grid_size == 1
    with pytest.raises(ValueError, match="unknown variant token"):
        load_config("configs/synthetic_has.py:grids=3")


# --------------------------------------------------------------------------- train steps

def _tiny_cfg(**has):
    cfg = load_config("configs/synthetic_has.py", ["--config.model.width=4"])
    cfg.data.num_classes = 5
    cfg.model.methods.has = {"grid_size": 4, **has}
    return cfg


@pytest.mark.slow
def test_the_train_step_is_the_cross_entropy_of_the_hidden_images():
    cfg = _tiny_cfg()
    model = registry.build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    state = jax.jit(lambda k: init_state(model, tx, k, (1, 32, 32, 3)))(init_key(0))
    batch = {"image": jax.random.normal(jax.random.key(0), (4, 32, 32, 3)),
             "label": jnp.array([0, 1, 2, 3])}
    step = jax.jit(make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10)))
    new_state, m = step(state, batch, jax.random.key(1))
    assert int(new_state.step) == 1 and np.isfinite(float(m["grad_norm"]))
    # By hand: the step folds its number into the run key, splits (transform, dropout) and hides
    # cells with the first part; the loss is the plain cross-entropy on those images.
    transform_key, dropout_key = jax.random.split(jax.random.fold_in(jax.random.key(1), 0))
    hidden = hide_and_seek(transform_key, batch["image"], grid_size=4, drop_rate=0.5)
    # Jitted (op by op each new shape compiles), as every forward below.
    forward = jax.jit(lambda v, x, k: model.apply(v, x, train=True, rngs={"dropout": k},
                                                  mutable=["batch_stats"]))
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    out, _ = forward(variables, hidden, dropout_key)
    logits = np.asarray(out["logits"], np.float64)
    log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                  keepdims=True)) - logits.max(1, keepdims=True)
    ce = -np.mean(log_softmax[np.arange(4), np.asarray(batch["label"])])
    assert float(m["loss"]) == pytest.approx(ce, rel=1e-5)
    # Accuracy against the (unchanged) labels.
    acc = np.mean(logits.argmax(1) == np.asarray(batch["label"]))
    assert float(m["accuracy"]) == pytest.approx(acc)
    # It differs from the loss without hiding.
    plain, _ = forward(variables, batch["image"], dropout_key)
    plain_ce = optax.softmax_cross_entropy_with_integer_labels(plain["logits"],
                                                               batch["label"]).mean()
    assert float(plain_ce) != pytest.approx(ce, rel=1e-4)


@pytest.mark.parametrize("architecture", ["vgg16", "resnet50", "inception_v3"])
def test_placed_on_the_benchmarks_backbones_the_step_traces(architecture):
    # The benchmark trains HaS with its CAM architecture on each backbone: the CAM model plus the
    # transform, nothing inserted. Shapes only (jax.eval_shape: no compile); the full steps run
    # in test_benchmark_backbone_steps.py (both transforms composed).
    cfg = load_config(f"configs/wsolevaluation.py:cub,cam,{architecture}")
    cfg.model.methods.has = {}
    (selected,) = registry.selected_methods(cfg.model)
    assert selected.method.name == "has" and cfg.model.inserts == ()
    model = registry.build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    state = jax.eval_shape(lambda k: init_state(model, tx, k, (1, 64, 64, 3)), init_key(0))
    batch = {"image": jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32),
             "label": jax.ShapeDtypeStruct((2,), jnp.int32)}
    step = make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10))
    _, metrics = jax.eval_shape(step, state, batch, jax.random.key(0))
    assert metrics["loss"].shape == ()
