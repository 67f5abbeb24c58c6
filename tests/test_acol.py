"""ACoL (wsolax.methods.acol): the erasing, the test CAM and the loss by hand and against an
independent torch.nn.functional forward of the benchmark's two-branch head (written here from
clovaai/wsolevaluation's description: `AcolBase._acol_logits`, `get_attention`,
`normalize_tensor`, `_erase_attention`, `return_cam`, `acol.get_loss`); gradients, jit, bfloat16,
the three backbones' ACoL variants and the synthetic config.

ACoL draws nothing at random, so there are no statistics over keys to check: training and
evaluation are deterministic functions of the parameters, images and labels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from backbone_testing import torch_one_thread  # noqa: F401  (autouse fixture)

from wsolax.config import base_config, load_config
from wsolax.methods.acol import (METHOD, AcolHead, AcolHparams, erase, erase_mask, forward,
                                 fused_cams, normalize_maps)
from wsolax.methods.api import make_hparams
from wsolax.models.wsol_model import init_key, init_variables
from wsolax.registry import build_model
from wsolax.training.objectives import build_objective

# numerics (CI's AVX2 rerun): the float32 comparisons with the references and by-hand values; the
# defaults, shapes, determinism, which parameters train and the draws' statistics are left out.

K = 4  # classes of the head-level tests
WIDTH = 8  # branch width of the head-level tests
THRESHOLD = 0.7


# ------------------------------------------------------------------ literal oracles
def loop_normalize(m):
    """normalize_tensor on one (h, w) map with plain loops: (x - min) / (max - min), NaN if flat;
    in float32, as the reference computes."""
    f32 = np.float32
    h, w = m.shape
    lo = hi = f32(m[0, 0])
    for i in range(h):
        for j in range(w):
            lo, hi = min(lo, f32(m[i, j])), max(hi, f32(m[i, j]))
    out = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            out[i, j] = (f32(m[i, j]) - lo) / (hi - lo) if hi > lo else np.nan
    return out


def loop_keep(m, threshold):
    """_erase_attention's mask on one map: 0 where the normalised value is >= threshold (NaN
    compares False, so a flat map keeps everything). torch.ge compares a float32 tensor with a
    Python float in float32: 7/10 in float32 is float32(0.7), so it is erased at 0.7."""
    n = loop_normalize(m)
    t = np.float32(threshold)
    return np.array([[0.0 if n[i, j] >= t else 1.0 for j in range(n.shape[1])]
                     for i in range(n.shape[0])])


def torch_normalize(x):
    """The benchmark's normalize_tensor on (B, C, h, w): per (b, c) min-max over positions."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    lo = flat.min(dim=-1, keepdim=True).values
    hi = flat.max(dim=-1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).reshape(x.shape)


def _oihw(kernel):
    hwio = np.asarray(kernel, np.float32)
    return torch.from_numpy(np.array(hwio.transpose(3, 2, 0, 1)))


def torch_branch(x, p):
    """Conv3x3 -> ReLU -> Conv3x3 -> ReLU -> Conv1x1 (classifier_A / classifier_B), NCHW."""
    def t(name):
        return _oihw(p[name]["kernel"]), torch.from_numpy(np.array(p[name]["bias"], np.float32))

    x = F.relu(F.conv2d(x, *t("conv1"), padding=1))
    x = F.relu(F.conv2d(x, *t("conv2"), padding=1))
    return F.conv2d(x, *t("classes"))


def torch_acol_nchw(branch_a, branch_b, x, labels, threshold=THRESHOLD):
    """The benchmark's ACoL head on NCHW torch features, its branches given as callables:
    (logits A, logits B, test CAMs (B, h, w) of `labels`, the smallest distance of a normalised
    attention value to the threshold), numpy. `labels` erase (None: A's argmax)."""
    with torch.no_grad():
        b = x.shape[0]
        map_a = branch_a(x)
        logits_a = F.adaptive_avg_pool2d(map_a, 1).flatten(1)
        labels = (logits_a.argmax(dim=1) if labels is None
                  else torch.as_tensor(np.array(labels), dtype=torch.long))
        attention = torch_normalize(map_a[torch.arange(b), labels][:, None])
        mask = torch.ones_like(attention)
        mask[attention >= threshold] = 0.0
        map_b = branch_b(x * mask)
        logits_b = F.adaptive_avg_pool2d(map_b, 1).flatten(1)
        fused = torch.maximum(torch_normalize(map_a), torch_normalize(map_b))
        cams = fused[torch.arange(b), labels]
        margin = (attention - threshold).abs().min().item()
    return logits_a.numpy(), logits_b.numpy(), cams.numpy(), margin


def torch_acol(head_params, features_nhwc, labels, threshold=THRESHOLD):
    """`torch_acol_nchw` with the branches' weights taken from a Flax head's parameters."""
    x = torch.from_numpy(np.array(np.asarray(features_nhwc, np.float32).transpose(0, 3, 1, 2)))
    return torch_acol_nchw(lambda f: torch_branch(f, head_params["classifier_A"]),
                           lambda f: torch_branch(f, head_params["classifier_B"]),
                           x, labels, threshold)


def np_ce(logits, labels):
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


# ------------------------------------------------------------------ helpers
def _features(seed=0, shape=(3, 5, 5, 6)):
    # Post-ReLU-like backbone features.
    return jnp.asarray(np.abs(np.random.default_rng(seed).normal(size=shape)), jnp.float32)


@functools.lru_cache(maxsize=None)
def _head(dtype=jnp.float32, threshold=THRESHOLD):
    head = AcolHead(num_classes=K, threshold=threshold, features=WIDTH, dtype=dtype)
    params = head.init(jax.random.key(0), _features())["params"]
    # Biases 0 at init (the reference's): random ones exercise their mapping too.
    rng = np.random.default_rng(7)
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.asarray(rng.normal(size=v.shape) * 0.1, v.dtype)
        if p[-1].key == "bias" else v, params)
    return head, {"params": params}


def _tiny_cfg(**acol):
    c = base_config()
    c.model.width = 4
    c.data.num_classes = 5
    c.model.methods.acol = {"features": WIDTH, **acol}
    return c


@functools.lru_cache(maxsize=None)
def _tiny():
    cfg = _tiny_cfg()
    model = build_model(cfg)
    variables = init_variables(model, init_key(0), (1, 32, 32, 3))
    rng = np.random.default_rng(3)
    batch = {"image": jnp.asarray(rng.normal(size=(4, 32, 32, 3)), jnp.float32),
             "label": jnp.asarray([0, 3, 1, 4], jnp.int32)}
    return cfg, model, variables, batch


def _backbone_features(model, variables, images):
    return model.apply(variables, images, method=lambda m, x: m.backbone(x, train=True))


# ------------------------------------------------------------------ normalisation and erasing
@pytest.mark.numerics
def test_normalisation_by_hand():
    # Map 0: [[2, 4], [6, 3]] -> (x - 2) / 4 = [[0, .5], [1, .25]]; map 1 is flat (the reference's
    # 0/0): not valid, values 0.
    maps = jnp.asarray([[[[2.0, 5.0], [4.0, 5.0]], [[6.0, 5.0], [3.0, 5.0]]]])  # (1, 2, 2, 2)
    normalized, valid = normalize_maps(maps)
    np.testing.assert_array_equal(np.asarray(normalized[0, ..., 0]), [[0, 0.5], [1, 0.25]])
    np.testing.assert_array_equal(np.asarray(normalized[0, ..., 1]), np.zeros((2, 2)))
    np.testing.assert_array_equal(np.asarray(valid).ravel(), [True, False])
    np.testing.assert_array_equal(np.asarray(normalized[0, ..., 0]),
                                  loop_normalize(np.asarray(maps[0, ..., 0])))


@pytest.mark.numerics
def test_erase_mask_by_hand_a_value_at_the_threshold_is_erased():
    # Normalised [[0, .5], [1, .25]]: at threshold 0.5, 0.5 and 1 are erased (>=, torch.ge);
    # just above 0.5 only the maximum is.
    att = jnp.asarray([[[2.0], [4.0]], [[6.0], [3.0]]])[None]  # (1, 2, 2, 1)
    np.testing.assert_array_equal(np.asarray(erase_mask(att, 0.5))[0, ..., 0], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(np.asarray(erase_mask(att, 0.5000001))[0, ..., 0],
                                  [[1, 1], [0, 1]])
    np.testing.assert_array_equal(np.asarray(erase_mask(att, 1.0))[0, ..., 0], [[1, 1], [0, 1]])
    np.testing.assert_array_equal(np.asarray(erase_mask(att, 0.0))[0, ..., 0], [[0, 0], [0, 0]])
    np.testing.assert_array_equal(np.asarray(erase_mask(att, 0.25))[0, ..., 0], [[1, 0], [0, 0]])


@pytest.mark.numerics
def test_a_flat_map_erases_nothing_and_gives_a_zero_cam():
    flat = jnp.full((1, 3, 3, 1), 2.5)
    for threshold in (0.0, 0.7):  # NaN >= 0 is False too
        np.testing.assert_array_equal(np.asarray(erase_mask(flat, threshold)),
                                      np.ones((1, 3, 3, 1)))
        np.testing.assert_array_equal(loop_keep(np.full((3, 3), 2.5), threshold), np.ones((3, 3)))
    varied = jnp.arange(9.0).reshape(1, 3, 3, 1)
    # A flat map on either side: the reference's max is NaN, scored as a zero map; here zeros.
    np.testing.assert_array_equal(np.asarray(fused_cams(flat, varied)), np.zeros((1, 3, 3, 1)))
    np.testing.assert_array_equal(np.asarray(fused_cams(varied, flat)), np.zeros((1, 3, 3, 1)))


@pytest.mark.numerics
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_erase_mask_matches_the_literal_loop(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    # Integer-valued maps: many normalised values land exactly on 0.3, 0.5, 0.7 (e.g. 3/10).
    maps = rng.integers(0, 11, size=(6, 4, 5, 1)).astype(np.float32)
    maps[:, 0, 0, 0], maps[:, 0, 1, 0] = 0, 10
    maps[5] = 4.0  # one flat map
    got = np.asarray(erase_mask(jnp.asarray(maps), threshold))[..., 0]
    expected = np.stack([loop_keep(m[..., 0], threshold) for m in maps])
    np.testing.assert_array_equal(got, expected)
    # The same values through the torch oracle's normalisation (float32, NaN for the flat map).
    attention = torch_normalize(torch.from_numpy(maps.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_array_equal(got, np.where((attention >= threshold).numpy()[:, 0], 0, 1))


@pytest.mark.numerics
def test_each_image_is_erased_by_its_own_class_in_every_channel():
    # Image 0 is erased by class 1's map, image 1 by class 0's; every channel gets the same mask.
    maps = np.zeros((2, 2, 2, 2), np.float32)
    maps[0, ..., 0] = [[9, 0], [0, 0]]  # class 0 of image 0: not used
    maps[0, ..., 1] = [[0, 1], [2, 10]]  # -> normalised [[0, .1], [.2, 1]]: erase (1, 1)
    maps[1, ..., 0] = [[10, 8], [0, 1]]  # -> [[1, .8], [0, .1]]: erase (0, 0), (0, 1)
    maps[1, ..., 1] = [[0, 0], [0, 9]]
    features = _features(1, (2, 2, 2, 3))
    out = np.asarray(erase(features, jnp.asarray(maps), jnp.asarray([[1], [0]]), 0.7))[:, 0]
    keep = np.array([[[1, 1], [1, 0]], [[0, 0], [1, 1]]], np.float32)
    np.testing.assert_array_equal(out, np.asarray(features) * keep[..., None])
    # Several classes per image: one erased copy each.
    both = np.asarray(erase(features, jnp.asarray(maps), jnp.asarray([[1, 0], [0, 1]]), 0.7))
    assert both.shape == (2, 2, 2, 2, 3)
    np.testing.assert_array_equal(both[:, 0], out)
    np.testing.assert_array_equal(both[0, 1], np.asarray(features)[0] * np.array(
        [[0, 1], [1, 1]], np.float32)[..., None])


@pytest.mark.numerics
def test_the_test_cam_is_the_max_of_the_normalised_maps_by_hand():
    a = jnp.asarray([[[1.0], [3.0]], [[5.0], [1.0]]])[None]  # normalised [[0, .5], [1, 0]]
    b = jnp.asarray([[[0.0], [0.0]], [[2.0], [8.0]]])[None]  # normalised [[0, 0], [.25, 1]]
    np.testing.assert_array_equal(np.asarray(fused_cams(a, b))[0, ..., 0], [[0, 0.5], [1, 1]])


# ------------------------------------------------------------------ the head against the reference
@pytest.mark.numerics
def test_training_branches_compute_the_reference():
    head, variables = _head()
    x = _features(2)
    labels = jnp.asarray([2, 0, 3])
    out = head.apply(variables, x, labels, method=AcolHead.branches)
    ref_a, ref_b, _, margin = torch_acol(variables["params"], x, np.asarray(labels))
    assert margin > 1e-4  # no normalised value so close to 0.7 that rounding could flip it
    np.testing.assert_allclose(np.asarray(out["logits"]), ref_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["logits_b"]), ref_b, rtol=1e-5, atol=1e-6)


@pytest.mark.numerics
def test_without_labels_the_argmax_of_a_erases():
    """`_acol_logits`: labels = logits.argmax(dim=1) when the model gets none."""
    head, variables = _head()
    x = _features(3)
    out = head.apply(variables, x, method=AcolHead.branches)
    top1 = jnp.argmax(out["logits"], axis=-1)
    by_top1 = head.apply(variables, x, top1, method=AcolHead.branches)
    np.testing.assert_array_equal(np.asarray(out["logits_b"]), np.asarray(by_top1["logits_b"]))
    ref_a, ref_b, _, margin = torch_acol(variables["params"], x, None)
    assert margin > 1e-4
    np.testing.assert_allclose(np.asarray(out["logits_b"]), ref_b, rtol=1e-5, atol=1e-6)
    # Another class erases elsewhere: B's logits change, A's do not.
    other = head.apply(variables, x, (top1 + 1) % K, method=AcolHead.branches)
    np.testing.assert_array_equal(np.asarray(other["logits"]), np.asarray(out["logits"]))
    assert np.abs(np.asarray(other["logits_b"]) - np.asarray(out["logits_b"])).max() > 1e-4


@pytest.mark.numerics
def test_evaluation_gives_a_logits_and_the_reference_cam_of_each_requested_class():
    """return_cam(labels=c): erased by c, max of both normalised maps, map c; logits are A's."""
    head, variables = _head()
    x = _features(5)  # seed 4 puts a normalised value 2e-6 from the threshold: asserted below
    apply = jax.jit(lambda v, f, c=None: head.apply(v, f, c))
    logits, cams_all = apply(variables, x)
    assert cams_all.shape == (3, 5, 5, K) and cams_all.dtype == jnp.float32
    for c in range(K):
        ref_a, _, ref_cam, margin = torch_acol(variables["params"], x, np.full(3, c))
        assert margin > 1e-4
        np.testing.assert_allclose(np.asarray(logits), ref_a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(cams_all[..., c]), ref_cam, atol=1e-5)
    classes = jnp.asarray([[1, 3], [0, 0], [2, 1]])
    logits_picked, picked = apply(variables, x, classes)
    np.testing.assert_array_equal(np.asarray(logits_picked), np.asarray(logits))
    np.testing.assert_allclose(
        np.asarray(picked),
        np.take_along_axis(np.asarray(cams_all), np.asarray(classes)[:, None, None, :], -1),
        atol=1e-6)
    assert 0 <= float(picked.min()) and float(picked.max()) <= 1


def test_evaluation_is_deterministic_and_draws_nothing():
    cfg, model, variables, batch = _tiny()
    apply = jax.jit(lambda v, x, c: model.apply(v, x, train=False, cam_classes=c))
    a = apply(variables, batch["image"], batch["label"][:, None])
    b = apply(variables, batch["image"], batch["label"][:, None])
    for key in ("logits", "cams", "features"):
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


@pytest.mark.numerics
def test_jit_matches_eager():
    head, variables = _head()
    x, classes = _features(5), jnp.asarray([[0], [1], [2]])
    eager = head.apply(variables, x, classes)
    jitted = jax.jit(head.apply)(variables, x, classes)
    for e, j in zip(eager, jitted):
        np.testing.assert_allclose(np.asarray(e), np.asarray(j), rtol=1e-5, atol=1e-6)
    labels = jnp.asarray([1, 2, 3])
    e = head.apply(variables, x, labels, method=AcolHead.branches)
    j = jax.jit(lambda v, f, y: head.apply(v, f, y, method=AcolHead.branches))(variables, x, labels)
    np.testing.assert_allclose(np.asarray(e["logits_b"]), np.asarray(j["logits_b"]), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.numerics
def test_bfloat16_head_keeps_float32_maths_outside_the_convs():
    head32, variables = _head()
    head16, _ = _head(jnp.bfloat16)
    x = _features(6)
    classes = jnp.asarray([[0], [1], [2]])
    l32, c32 = head32.apply(variables, x, classes)
    l16, c16 = head16.apply(variables, x.astype(jnp.bfloat16), classes)
    assert l16.dtype == jnp.float32 and c16.dtype == jnp.float32
    assert np.isfinite(np.asarray(c16)).all()
    np.testing.assert_allclose(np.asarray(l16), np.asarray(l32), atol=0.05 * np.abs(l32).max())
    out = head16.apply(variables, x.astype(jnp.bfloat16), jnp.asarray([0, 1, 2]),
                       method=AcolHead.branches)
    assert out["maps_a"].dtype == jnp.bfloat16 and out["logits_b"].dtype == jnp.float32


# ------------------------------------------------------------------ training: forward, loss, grads
@pytest.mark.numerics
def test_the_loss_is_ce_a_plus_ce_b_by_hand_with_the_ground_truth_erasing():
    cfg, model, variables, batch = _tiny()
    objective = build_objective(cfg)
    loss, (aux, _) = objective(model, variables, batch, jax.random.key(0), 0)
    features = _backbone_features(model, variables, batch["image"])
    labels = np.asarray(batch["label"])
    ref_a, ref_b, _, margin = torch_acol(variables["params"]["head"], features, labels)
    assert margin > 1e-4
    expected = np_ce(ref_a, labels) + np_ce(ref_b, labels)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    metrics = aux["metrics"]
    np.testing.assert_allclose(float(metrics["loss_ce_a"]), np_ce(ref_a, labels), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["loss_ce_b"]), np_ce(ref_b, labels), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(aux["logits"]), ref_a, rtol=1e-5, atol=1e-6)


@pytest.mark.numerics
def test_training_erases_with_the_labels_of_the_batch():
    cfg, model, variables, batch = _tiny()
    hp = make_hparams(METHOD, cfg.model.methods.acol)
    features = _backbone_features(model, variables, batch["image"])
    for labels in (batch["label"], (batch["label"] + 2) % 5):
        out, updates = forward(model, variables, {**batch, "label": labels}, hp,
                               rngs={"dropout": jax.random.key(0)})
        _, ref_b, _, _ = torch_acol(variables["params"]["head"], features, np.asarray(labels))
        np.testing.assert_allclose(np.asarray(out["logits_b"]), ref_b, rtol=1e-5, atol=1e-6)
        assert "batch_stats" in updates


@pytest.mark.slow
def test_gradients_reach_both_branches_and_the_backbone_and_b_does_not_train_a():
    cfg, model, variables, batch = _tiny()
    objective = build_objective(cfg)

    def norm(tree):
        return float(np.sqrt(sum(float(jnp.sum(jnp.square(g))) for g in jax.tree.leaves(tree))))

    # Jitted: op by op, each new shape would compile on its own.
    grads = jax.jit(jax.grad(lambda p: objective(model, {**variables, "params": p}, batch,
                                                 jax.random.key(0), 0)[0]))(variables["params"])
    for part in (grads["backbone"], grads["head"]["classifier_A"], grads["head"]["classifier_B"]):
        assert norm(part) > 0 and all(np.isfinite(np.asarray(g)).all()
                                      for g in jax.tree.leaves(part))
    hp = make_hparams(METHOD, cfg.model.methods.acol)

    def ce_b(params):
        out, _ = forward(model, {**variables, "params": params}, batch, hp,
                         rngs={"dropout": jax.random.key(0)})
        return -jnp.mean(jax.nn.log_softmax(out["logits_b"])[jnp.arange(4), batch["label"]])

    g_b = jax.jit(jax.grad(ce_b))(variables["params"])
    # The attention is detached in the reference (get_attention): B's loss reaches A only
    # through a 0/1 mask, i.e. not at all; it does reach B and the backbone through the features.
    assert norm(g_b["head"]["classifier_A"]) == 0.0
    assert norm(g_b["head"]["classifier_B"]) > 0 and norm(g_b["backbone"]) > 0


# ------------------------------------------------------------------ hyperparameters and configs
def test_defaults_are_the_benchmarks_and_values_are_checked():
    hp = AcolHparams()
    assert (hp.threshold, hp.features, hp.init) == (0.7, 1024, "xavier")
    for field, value in (("threshold", 1.5), ("threshold", -0.1), ("features", 0),
                         ("init", "kaiming")):
        with pytest.raises(ValueError, match=rf"model\.methods\.acol\.{field}"):
            make_hparams(METHOD, {field: value})


@pytest.mark.numerics
def test_branch_initialisation_follows_the_benchmark():
    # Xavier-uniform (VggAcol, InceptionAcol): bound sqrt(6 / (fan_in + fan_out));
    # Kaiming-normal fan-out (ResNetAcol): std sqrt(2 / fan_out); biases 0.
    x = jnp.zeros((1, 4, 4, 64))
    for init in ("xavier", "he"):
        head = AcolHead(num_classes=10, features=256, conv_init=init)
        p = head.init(jax.random.key(1), x)["params"]
        w = np.asarray(p["classifier_A"]["conv2"]["kernel"])  # 3x3, 256 -> 256
        fan_in = fan_out = 9 * 256
        if init == "xavier":
            bound = np.sqrt(6 / (fan_in + fan_out))
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
        else:
            np.testing.assert_allclose(w.std(), np.sqrt(2 / fan_out), rtol=0.02)
        assert not np.asarray(p["classifier_B"]["conv1"]["bias"]).any()


@pytest.mark.slow
def test_the_synthetic_config_builds_and_trains_a_step():
    cfg = load_config("configs/synthetic_acol.py:runlocal")
    assert dict(cfg.model.methods.acol)["threshold"] == 0.7
    model = build_model(cfg)
    variables = jax.jit(lambda k: init_variables(model, k, (1, 32, 32, 3)))(init_key(0))
    assert set(variables["params"]["head"]) == {"classifier_A", "classifier_B"}
    batch = {"image": jnp.zeros((2, 32, 32, 3)), "label": jnp.asarray([0, 1])}
    objective = build_objective(cfg)
    loss, _ = jax.jit(lambda v: objective(model, v, batch, jax.random.key(0), 0))(variables)
    assert np.isfinite(float(loss))


# ------------------------------------------------------------------ the three backbones
def _wsolevaluation_cfg(arch, *overrides, acol=True, features=None):
    section = {"features": features} if features else {}
    extra = [f"--config.model.methods.acol={section}"] if acol else []
    return load_config(f"configs/wsolevaluation.py:cub,cam,{arch}",
                       ["--config.data.num_classes=6", *extra, *overrides])


def _shapes(cfg, size=224):
    model = build_model(cfg)
    out, variables = jax.eval_shape(lambda k: model.init_with_output(
        {"params": k, "dropout": k}, jnp.zeros((1, size, size, 3)), train=False), init_key(0))
    return out, variables


@pytest.mark.parametrize("arch,channels", [("vgg16", 512), ("resnet50", 2048),
                                           ("inception_v3", 768)])
@pytest.mark.parametrize("large", [False, True])
def test_each_backbone_gives_the_benchmarks_acol_features(arch, channels, large):
    out, variables = _shapes(_wsolevaluation_cfg(
        arch, f"--config.model.large_feature_map={large}"))
    side = 28 if large else 14
    assert out["features"].shape == (1, side, side, channels)
    assert out["logits"].shape == (1, 6)
    backbone = set(variables["params"]["backbone"])
    assert not any(n.startswith("wsol_") for n in backbone)  # no conv6, no InceptionV3 head convs
    head = variables["params"]["head"]
    assert head["classifier_A"]["conv1"]["kernel"].shape == (3, 3, channels, 1024)
    assert head["classifier_B"]["conv2"]["kernel"].shape == (3, 3, 1024, 1024)
    assert head["classifier_B"]["classes"]["kernel"].shape == (1, 1, 1024, 6)


@pytest.mark.parametrize("arch", ["vgg16", "inception_v3"])
def test_without_acol_the_backbones_are_unchanged(arch):
    out, variables = _shapes(_wsolevaluation_cfg(arch, acol=False))
    assert out["features"].shape == (1, 14, 14, 1024)
    assert any(n.startswith("wsol_") for n in variables["params"]["backbone"])
