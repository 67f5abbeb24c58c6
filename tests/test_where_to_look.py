"""Where to Look: the complementary pair, CAAM, SSAM, the fusion loss, the head and the step.

Oracles are literal numpy loops over the paper's equations (Eqs. 1-7, 14) or hand computations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.config import base_config, load_config
from wsolax.methods.where_to_look import (
    CAAM, SSAM, WhereToLookHead, caam, complementary_pair, fusion_loss, hidden_mask,
    scaled_patch_sizes, ssam)
from wsolax.registry import build_model, selected_methods
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.models.wsol_model import init_key
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step

# numerics (CI's AVX2 rerun, .ci/run): the float32 comparisons with the equations, hand values and
# the model's other paths; the pair's masks (exact selections), their statistics and the configs
# hold on either instruction set.


def _softmax_rows(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _grid_of(mask: np.ndarray, p: int) -> bool:
    """True if `mask` (H, W) is constant on every p x p cell of a grid from the top-left corner."""
    h, w = mask.shape
    for i in range(0, h, p):
        for j in range(0, w, p):
            cell = mask[i:i + p, j:j + p]
            if not (cell == cell[0, 0]).all():
                return False
    return True


# ---------------------------------------------------------------- the complementary pair

def test_the_two_views_partition_the_image_exactly():
    images = jax.random.uniform(jax.random.key(1), (6, 30, 26, 3), minval=1.0, maxval=2.0)
    x, x_tilde, hidden = complementary_pair(jax.random.key(0), images, patch_sizes=(4, 7, 9))
    x, x_tilde, hidden, images = map(np.asarray, (x, x_tilde, hidden, images))
    # Every pixel is shown in exactly one view (the images are >= 1, the fill is 0).
    shown_x, shown_xt = x != 0, x_tilde != 0
    assert not (shown_x & shown_xt).any() and (shown_x | shown_xt).all()
    np.testing.assert_array_equal(x + x_tilde, images)  # exact: one of each pair is 0
    np.testing.assert_array_equal(shown_x[..., 0], ~hidden)
    # A hidden cell hides all three channels.
    assert (shown_x.all(-1) == shown_x.any(-1)).all()


def test_the_fill_value_is_configurable():
    images = jnp.ones((2, 8, 8, 3))
    x, x_tilde, hidden = complementary_pair(jax.random.key(3), images, patch_sizes=(2,), fill=-5.0)
    hidden = np.repeat(np.asarray(hidden)[..., None], 3, axis=-1)
    np.testing.assert_array_equal(np.asarray(x), np.where(hidden, -5.0, 1.0))
    np.testing.assert_array_equal(np.asarray(x_tilde), np.where(hidden, 1.0, -5.0))


def test_a_fixed_patch_size_hides_whole_grid_cells_including_the_cut_border_cells():
    hidden = np.asarray(hidden_mask(jax.random.key(0), 20, 23, 17, patch_sizes=(5,)))
    assert all(_grid_of(m, 5) for m in hidden)
    # 23 = 4*5 + 3 and 17 = 3*5 + 2: a 5 x 4 grid whose last row/column of cells is cut short,
    # and those cut cells vary too (they are hidden independently, not always shown).
    assert hidden[:, 20:, :].any() and (~hidden[:, 20:, :]).any()
    assert hidden[:, :, 15:].any() and (~hidden[:, :, 15:]).any()


def test_cells_are_hidden_with_the_configured_probability():
    # 2000 images x 16 cells = 32000 Bernoulli draws; 5 sigma of the rate is 5*sqrt(p(1-p)/n).
    for p in (0.5, 0.3):
        hidden = np.asarray(hidden_mask(jax.random.key(4), 2000, 16, 16, patch_sizes=(4,),
                                        hide_prob=p))
        rate = hidden[:, ::4, ::4].mean()
        assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / 32000)


def test_mixed_patch_sizes_draw_one_size_per_image_uniformly():
    # 3 and 8 on a 24 x 24 image: neither grid refines the other, so each mask reveals its size.
    n = 1200
    hidden = np.asarray(hidden_mask(jax.random.key(5), n, 24, 24, patch_sizes=(3, 8)))
    on3 = np.array([_grid_of(m, 3) for m in hidden])
    on8 = np.array([_grid_of(m, 8) for m in hidden])
    assert (on3 | on8).all()
    only8 = on8 & ~on3  # a size-8 mask is on the 3-grid only if every 8-cell split agrees
    frac8 = only8.mean()
    assert abs(frac8 - 0.5) < 5 * np.sqrt(0.25 / n)


def test_same_key_same_pair_other_key_other_pair_and_jit_agrees():
    images = jax.random.normal(jax.random.key(9), (4, 16, 16, 3))
    a = complementary_pair(jax.random.key(0), images, patch_sizes=(4, 8))
    b = complementary_pair(jax.random.key(0), images, patch_sizes=(4, 8))
    c = complementary_pair(jax.random.key(1), images, patch_sizes=(4, 8))
    jitted = jax.jit(lambda k, im: complementary_pair(k, im, patch_sizes=(4, 8)))(
        jax.random.key(0), images)
    for u, v, w in zip(a, b, jitted):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
        np.testing.assert_array_equal(np.asarray(u), np.asarray(w))
    assert not np.array_equal(np.asarray(a[2]), np.asarray(c[2]))


def test_patch_sizes_scale_with_the_crop():
    # The paper's {16, 32, 44, 56} at 224 px: x 64/224 = 4.57, 9.14, 12.57, 16 -> 5, 9, 13, 16.
    assert scaled_patch_sizes(224) == (16, 32, 44, 56)
    assert scaled_patch_sizes(64) == (5, 9, 13, 16)
    with pytest.raises(ValueError):
        hidden_mask(jax.random.key(0), 1, 8, 8, patch_sizes=())


# ---------------------------------------------------------------- CAAM

def _caam_oracle(fx, fxt, dx, dxt, softmax="summed_index"):
    """Eqs. 1-6 with C x N matrices, looped per batch element. lambda^{ki} = Q[k, i] with
    E = F_x F_x~^T (Eq. 1) and E^T (Eq. 5); "summed_index": each lambda^{ki} normalised over k, the
    index Eq. 4 sums (DANet's x_ji = exp(A_i.A_j) / sum_i exp(A_i.A_j)); "row": Q a row softmax."""
    out_x, out_xt = np.empty_like(fx), np.empty_like(fxt)
    for b in range(fx.shape[0]):
        h, w, c = fx.shape[1:]
        a = fx[b].reshape(h * w, c).T.astype(np.float64)  # C x N
        t = fxt[b].reshape(h * w, c).T.astype(np.float64)
        weights = []
        for energy in (a @ t.T, t @ a.T):                 # Eqs. 1 and 5
            lam = np.empty((c, c))
            for k in range(c):
                for i in range(c):
                    if softmax == "summed_index":
                        lam[k, i] = np.exp(energy[k, i]) / sum(np.exp(energy[m, i])
                                                               for m in range(c))
                    else:
                        lam[k, i] = np.exp(energy[k, i]) / sum(np.exp(energy[k, m])
                                                               for m in range(c))
            weights.append(lam)
        y_x = np.zeros_like(a)
        y_xt = np.zeros_like(t)
        for i in range(c):                                # Eqs. 4 and 6, literally
            for k in range(c):
                y_x[i] += weights[0][k, i] * t[k]
                y_xt[i] += weights[1][k, i] * a[k]
        out_x[b] = (a + dx * y_x).T.reshape(h, w, c)
        out_xt[b] = (t + dxt * y_xt).T.reshape(h, w, c)
    return out_x, out_xt


@pytest.mark.numerics
@pytest.mark.parametrize("softmax", ["summed_index", "row"])
def test_caam_matches_the_papers_equations(softmax):
    rng = np.random.default_rng(0)
    fx = rng.uniform(0, 1, (2, 3, 4, 5)).astype(np.float32)
    fxt = rng.uniform(0, 1, (2, 3, 4, 5)).astype(np.float32)
    got = caam(jnp.asarray(fx), jnp.asarray(fxt), 0.7, -0.3, softmax)
    want = _caam_oracle(fx, fxt, 0.7, -0.3, softmax)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-6)


@pytest.mark.numerics
def test_caam_output_is_a_weighted_average_of_the_other_views_channels():
    """By hand: when every channel of F_x is the same map u, E[k, i] = <u, F_x~[i]> does not depend
    on k. Normalised over k (the default), every lambda^{ki} = 1/C, so Y_x[i] = mean_k F_x~[k] for
    every i: a weighted average. The row reading's Q[k, i] = p_i = softmax_j <u, F_x~[j]> at i for
    every k, so Y_x[i] = C p_i mean_k F_x~[k]: its weights sum to C p_i, not 1."""
    rng = np.random.default_rng(3)
    c = 6
    u = rng.uniform(0, 1, (1, 3, 3, 1)).astype(np.float32)
    fx = np.repeat(u, c, axis=-1)
    fxt = rng.uniform(0, 1, (1, 3, 3, c)).astype(np.float32)
    mean = fxt.mean(-1, keepdims=True)
    # delta_x = 1, delta_x~ = 0: F^c_x - F_x = Y_x.
    y, _ = caam(jnp.asarray(fx), jnp.asarray(fxt), 1.0, 0.0)
    np.testing.assert_allclose(np.asarray(y) - fx, np.repeat(mean, c, -1), rtol=1e-5, atol=1e-6)
    energy = np.einsum("n,nj->j", u.reshape(-1).astype(np.float64), fxt.reshape(-1, c))
    p = np.exp(energy - energy.max()) / np.exp(energy - energy.max()).sum()
    y_row, _ = caam(jnp.asarray(fx), jnp.asarray(fxt), 1.0, 0.0, "row")
    np.testing.assert_allclose(np.asarray(y_row) - fx, c * p * mean, rtol=1e-4, atol=1e-6)
    assert abs(c * p - 1).max() > 0.1  # the inputs tell the readings apart
    with pytest.raises(ValueError, match="softmax"):
        caam(jnp.asarray(fx), jnp.asarray(fxt), 1.0, 0.0, "column")


@pytest.mark.numerics
def test_caam_is_the_identity_at_initialisation_and_keeps_bf16():
    f = jax.random.uniform(jax.random.key(0), (2, 4, 4, 8))
    g = jax.random.uniform(jax.random.key(1), (2, 4, 4, 8))
    module = CAAM()
    variables = module.init(jax.random.key(2), f, g)
    assert float(variables["params"]["delta_x"]) == 0.0
    assert float(variables["params"]["delta_x_tilde"]) == 0.0
    out_x, out_xt = module.apply(variables, f, g)
    np.testing.assert_array_equal(np.asarray(out_x), np.asarray(f))
    np.testing.assert_array_equal(np.asarray(out_xt), np.asarray(g))
    bx, _ = caam(f.astype(jnp.bfloat16), g.astype(jnp.bfloat16), 0.5, 0.5)
    assert bx.dtype == jnp.bfloat16


# ---------------------------------------------------------------- SSAM

def _ssam_oracle(f, q, k, v, alpha):
    out = np.empty_like(f, dtype=np.float64)
    for b in range(f.shape[0]):
        h, w, c = f.shape[1:]
        x = f[b].reshape(h * w, c).astype(np.float64)
        m = (x @ q[0] + q[1]).T  # C' x N
        l = (x @ k[0] + k[1]).T
        p = (x @ v[0] + v[1]).T  # C x N
        kk = _softmax_rows(m.T @ l)  # K = softmax(M^T L), N x N
        r = p @ kk.T                 # R = P K^T
        out[b] = (x.T + alpha * r).T.reshape(h, w, c)
    return out


@pytest.mark.numerics
def test_ssam_matches_the_papers_equations():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 3, 3, 16)).astype(np.float32)
    q = (rng.normal(size=(16, 2)) * 0.3, rng.normal(size=2))
    k = (rng.normal(size=(16, 2)) * 0.3, rng.normal(size=2))
    v = (rng.normal(size=(16, 16)), rng.normal(size=16))
    got = ssam(jnp.asarray(f), q, k, v, 0.4)
    np.testing.assert_allclose(np.asarray(got), _ssam_oracle(f, q, k, v, 0.4), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.numerics
def test_ssam_is_the_identity_at_initialisation_with_c_over_8_projections():
    f = jax.random.normal(jax.random.key(0), (2, 4, 4, 32))
    module = SSAM()
    variables = module.init(jax.random.key(1), f)
    params = variables["params"]
    assert params["query_kernel"].shape == (32, 4) and params["key_kernel"].shape == (32, 4)
    assert params["value_kernel"].shape == (32, 32) and float(params["alpha"]) == 0.0
    np.testing.assert_array_equal(np.asarray(module.apply(variables, f)), np.asarray(f))


# ---------------------------------------------------------------- the fusion loss

def _attention_transfer_loss(a, b, reduction):
    """szagoruyko/attention-transfer: at(x) = l2-normalised flattened map per sample, at_loss =
    (at(x) - at(y)).pow(2).mean() -- here on the CAMs Eq. 14 compares; "sum" sums the positions
    (and averages the batch) instead of averaging them."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    at_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    at_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    squared = (at_a - at_b) ** 2
    return squared.mean() if reduction == "mean" else squared.sum(axis=1).mean()


@pytest.mark.numerics
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fusion_loss_is_zero_for_identical_or_rescaled_cams(reduction):
    a = jax.random.normal(jax.random.key(0), (3, 4, 4))
    assert float(fusion_loss(a, a, reduction)) == pytest.approx(0.0, abs=1e-12)
    assert float(fusion_loss(a, 2.5 * a, reduction)) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.numerics
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fusion_loss_is_attention_transfers_formula(reduction):
    a = jax.random.normal(jax.random.key(0), (3, 12, 12))
    b = jax.random.normal(jax.random.key(1), (3, 12, 12))
    assert float(fusion_loss(a, b, reduction)) == pytest.approx(
        _attention_transfer_loss(a, b, reduction), rel=1e-5)
    # The default is attention transfer's mean: 144x below the sum on 12x12 maps.
    assert float(fusion_loss(a, b)) == pytest.approx(_attention_transfer_loss(a, b, "mean"),
                                                     rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        fusion_loss(a, b, "max")


@pytest.mark.numerics
def test_fusion_loss_value_and_gradient_on_a_hand_example():
    # V_x = (3, 4) -> (.6, .8); V_x~ = (1, 0). Squared differences (.16, .64): sum 0.8, mean 0.4.
    # d(sum)/dV_x = 2/|V_x| (I - v v^T)(v - u) with v = (.6, .8), u = (1, 0): v.(v - u) = 0.4,
    # (v - u) - 0.4 v = (-.64, .48), times 2/5 = (-.256, .192); the mean halves it.
    a = jnp.array([[[3.0, 4.0]]])
    b = jnp.array([[[1.0, 0.0]]])
    assert float(fusion_loss(a, b, "sum")) == pytest.approx(0.8, rel=1e-6)
    assert float(fusion_loss(a, b)) == pytest.approx(0.4, rel=1e-6)
    grad = jax.grad(fusion_loss)(a, b, "sum")
    np.testing.assert_allclose(np.asarray(grad).ravel(), [-0.256, 0.192], rtol=1e-5)
    grad = jax.grad(fusion_loss)(a, b)
    np.testing.assert_allclose(np.asarray(grad).ravel(), [-0.128, 0.096], rtol=1e-5)
    # Averaged over the batch: a second, identical pair halves the loss.
    assert float(fusion_loss(jnp.concatenate([a, b]), jnp.concatenate([b, b]), "sum")) == \
        pytest.approx(0.4, rel=1e-6)
    assert float(fusion_loss(jnp.concatenate([a, b]), jnp.concatenate([b, b]))) == \
        pytest.approx(0.2, rel=1e-6)


# ---------------------------------------------------------------- head, model and step

def _wtl_cfg(**wtl):
    cfg = base_config()
    cfg.model.width = 4
    cfg.model.methods.where_to_look = {"patch_sizes": (4, 8), **wtl}
    return cfg


@pytest.mark.numerics
def test_init_creates_both_branches_and_eval_equals_the_training_path_at_init():
    head = WhereToLookHead(num_classes=5)
    f = jax.nn.relu(jax.random.normal(jax.random.key(0), (2, 4, 4, 16)))
    variables = head.init(jax.random.key(1), f)
    assert set(variables["params"]) == {"caam", "ssam_x", "ssam_x_tilde", "agg_x", "agg_x_tilde",
                                        "classifier_x", "classifier_x_tilde"}
    logits, cams = head.apply(variables, f, jnp.array([[1], [3]]))
    pair = head.apply(variables, f, f, jnp.array([[1], [3]]), method="pair")
    # delta = alpha = 0: F^c + F^s = 2F, the eval path's input, through the same layers.
    np.testing.assert_allclose(np.asarray(logits), np.asarray(pair["logits"]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(cams), np.asarray(pair["cams"]), rtol=1e-6)
    other = WhereToLookHead(num_classes=5, test_branch="x_tilde")
    np.testing.assert_allclose(np.asarray(other.apply(variables, f)[0]),
                               np.asarray(pair["logits_tilde"]), rtol=1e-6)
    # Eq. 9: F^t = conv(F^c + F^s), no activation; the CAM is W^T F^t / C by hand (heads.py),
    # on a 1x1 aggregation conv (a matrix product) so the hand computation stays short.
    head_1x1 = WhereToLookHead(num_classes=5, agg_kernel=1)
    v1x1 = head_1x1.init(jax.random.key(1), f)
    p1 = v1x1["params"]
    agg = np.einsum("bhwc,cd->bhwd", 2 * np.asarray(f),
                    np.asarray(p1["agg_x"]["conv"]["kernel"])[0, 0]) + \
        np.asarray(p1["agg_x"]["conv"]["bias"])
    assert (agg < 0).any()  # an activation would show
    w = np.asarray(p1["classifier_x"]["kernel"])

    def cams_by_hand(features):  # image 0's CAM of class 1, image 1's of class 3
        cams = np.einsum("bhwd,dk->bhwk", features, w) / features.shape[-1]
        return np.stack([cams[0, ..., 1], cams[1, ..., 3]])[..., None]

    _, cams_1x1 = head_1x1.apply(v1x1, f, jnp.array([[1], [3]]))
    np.testing.assert_allclose(np.asarray(cams_1x1), cams_by_hand(agg), rtol=1e-4, atol=1e-6)
    relu_head = WhereToLookHead(num_classes=5, agg_kernel=1, agg_activation="relu")
    _, cams_relu = relu_head.apply(v1x1, f, jnp.array([[1], [3]]))
    np.testing.assert_allclose(np.asarray(cams_relu), cams_by_hand(np.maximum(agg, 0)),
                               rtol=1e-4, atol=1e-6)
    # eval_input="single": conv(F), the modules removed outright.
    single = WhereToLookHead(num_classes=5, agg_kernel=1, eval_input="single")
    half = head_1x1.apply(v1x1, 0.5 * f, jnp.array([[1], [3]]))[1]
    np.testing.assert_allclose(np.asarray(single.apply(v1x1, f, jnp.array([[1], [3]]))[1]),
                               np.asarray(half), rtol=1e-5, atol=1e-7)
    shared = WhereToLookHead(num_classes=5, share_classifier=True).init(jax.random.key(1), f)
    assert "classifier" in shared["params"] and "classifier_x" not in shared["params"]


@pytest.mark.numerics
@pytest.mark.slow
def test_the_model_runs_both_views_through_the_shared_backbone():
    cfg = _wtl_cfg()
    model = build_model(cfg)
    x = jax.random.normal(jax.random.key(0), (3, 32, 32, 3))
    xt = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
    # Jitted, each call one compilation (op by op each new shape compiles on XLA:CPU).
    variables = jax.jit(lambda k: model.init({"params": k, "dropout": k}, x, train=False))(
        jax.random.key(2))
    classes = jnp.array([[0], [1], [2]])
    out = jax.jit(lambda v: model.apply(v, x, xt, train=True, cam_classes=classes,
                                        method="pair"))(variables)
    # The same, by hand: each view alone through the backbone, then the head's training path.
    backbone = jax.jit(lambda v, im: model.apply(
        v, im, train=True, method=lambda m, im, train: m.backbone(im, train=train)))
    fx, fxt = backbone(variables, x), backbone(variables, xt)
    want = jax.jit(lambda v, a, b: model.apply(
        v, a, b, classes, method=lambda m, a, b, c: m.head.pair(a, b, c)))(variables, fx, fxt)
    for key in ("logits", "logits_tilde", "cams", "cams_tilde"):
        np.testing.assert_allclose(np.asarray(out[key]), np.asarray(want[key]), rtol=1e-5,
                                   atol=1e-6)
    assert out["cams"].shape == (3, 4, 4, 1)


@pytest.mark.numerics
@pytest.mark.slow
def test_the_train_step_minimises_both_cross_entropies_plus_beta_times_the_fusion_loss():
    cfg = _wtl_cfg(fusion_weight=50.0)
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    state = jax.jit(lambda k: init_state(model, tx, k, (1, 32, 32, 3)))(init_key(0))
    step = jax.jit(make_train_step(model, tx, build_objective(cfg)))
    batch = {"image": jax.random.normal(jax.random.key(0), (4, 32, 32, 3)),
             "label": jnp.array([0, 1, 2, 3])}
    new_state, m = step(state, batch, jax.random.key(1))
    assert float(m["loss"]) == pytest.approx(
        float(m["loss_ce_x"] + m["loss_ce_x_tilde"] + 50.0 * m["loss_fusion"]), rel=1e-5)
    assert np.isfinite(float(m["grad_norm"])) and float(m["loss_fusion"]) > 0
    # Every head parameter receives a gradient (CAAM's deltas and SSAM's alphas included). SSAM's
    # projections only once its alpha is off 0 (their zero-initialised biases see no weight decay
    # either), i.e. from the second step on.
    after_two, _ = step(new_state, batch, jax.random.key(2))
    for before, after, exempt in ((state, new_state, "_bias"), (new_state, after_two, None)):
        moved = jax.tree_util.tree_map_with_path(
            lambda path, a, b: bool(np.any(np.asarray(a) != np.asarray(b))) or (
                exempt is not None and path[0].key.startswith("ssam")
                and path[-1].key.endswith(exempt)),
            before.params["head"], after.params["head"])
        assert all(jax.tree.leaves(moved)), moved
    # Same key -> same step; the pair depends on the key.
    _, m2 = step(state, batch, jax.random.key(1))
    _, m3 = step(state, batch, jax.random.key(2))
    assert float(m2["loss"]) == float(m["loss"]) and float(m3["loss"]) != float(m["loss"])


def _hparams(cfg):
    """Where to Look's checked hyperparameters, asserting it is the one selected method."""
    (selected,) = selected_methods(cfg.model)
    assert selected.method.name == "where_to_look" and cfg.model.head == "gap_linear"
    return selected.hparams


def test_synthetic_and_paper_configs():
    cfg = load_config("configs/synthetic_wtl.py")
    wtl = _hparams(cfg)
    assert wtl.patch_sizes == (5, 9, 13, 16)
    assert wtl.fusion_weight == 50.0 and wtl.hide_prob == 0.5
    assert (wtl.fusion_reduction, wtl.caam_softmax, wtl.agg_activation, wtl.eval_input) == \
        ("mean", "summed_index", "none", "sum")
    assert cfg.optim.clip_grad_norm == 0.0  # the paper gives no clipping
    v1 = load_config("configs/synthetic_wtl.py:finegrained,readings=v1")
    old = _hparams(v1)
    assert (old.fusion_reduction, old.caam_softmax, old.agg_activation, old.eval_input) == \
        ("sum", "row", "relu", "sum")
    assert v1.optim.clip_grad_norm == 5.0 and v1.workdir.endswith("_finegrained_readingsv1")
    assert (v1.optim.nesterov, v1.model.classifier_init_std) == (False, 0.0)
    with pytest.raises(ValueError, match="readings"):
        load_config("configs/synthetic_wtl.py:readings=v3")
    fixed = _hparams(load_config("configs/synthetic_wtl.py:runlocal,patch=9,nofusion,test=x_tilde"))
    assert fixed.patch_sizes == (9,) and fixed.fusion_weight == 0.0
    assert fixed.test_branch == "x_tilde"
    with pytest.raises(ValueError):
        load_config("configs/synthetic_wtl.py:patches=3")
    for name, classes in (("cub_wtl_resnet50", 200), ("ilsvrc_wtl_resnet50", 1000)):
        cfg = load_config(f"configs/{name}.py")
        assert cfg.model.backbone == "resnet50" and cfg.data.num_classes == classes
        assert _hparams(cfg).patch_sizes == (16, 32, 44, 56) and cfg.data.crop_size == 224


def test_fusion_weight_schedule_by_hand():
    from wsolax.methods.where_to_look.loss import fusion_weight_at

    # Paper: constant beta from the first step.
    assert float(fusion_weight_at(0, 50.0)) == 50.0
    # Off before step 10, then 1/4, 2/4, 3/4, 4/4 of beta over steps 10..13, then constant.
    want = {0: 0.0, 9: 0.0, 10: 12.5, 11: 25.0, 12: 37.5, 13: 50.0, 14: 50.0, 1000: 50.0}
    for step, beta in want.items():
        assert float(fusion_weight_at(step, 50.0, 10, 4)) == beta, step
    assert [float(fusion_weight_at(s, 8.0, 5)) for s in (4, 5, 6)] == [0.0, 8.0, 8.0]


@pytest.mark.numerics
@pytest.mark.slow
def test_the_step_adds_no_fusion_term_before_the_schedule_starts_it():
    cfg = _wtl_cfg(fusion_weight=50.0)
    cfg.model.methods.where_to_look.fusion_start_epochs = 1.0  # 10 steps per epoch below
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    state = jax.jit(lambda k: init_state(model, tx, k, (1, 32, 32, 3)))(init_key(0))
    step = jax.jit(make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10)))
    batch = {"image": jax.random.normal(jax.random.key(0), (4, 32, 32, 3)),
             "label": jnp.array([0, 1, 2, 3])}
    _, m = step(state, batch, jax.random.key(1))
    assert float(m["loss_fusion"]) > 0 and float(m["fusion_weight"]) == 0.0
    assert float(m["loss"]) == pytest.approx(float(m["loss_ce_x"] + m["loss_ce_x_tilde"]), rel=1e-6)
    _, m = step(state.replace(step=10), batch, jax.random.key(1))
    assert float(m["fusion_weight"]) == 50.0
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_objective(cfg)
