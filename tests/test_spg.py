"""SPG's maths and wiring (wsolax.methods.spg) against hand computations and literal oracles.

Oracles: torch.nn.functional.interpolate (bilinear, align_corners=False: the benchmark's
`nn.Upsample(size=(224, 224), mode='bilinear')`), torch's BCEWithLogitsLoss and conv2d, and plain
numpy loops that follow the rules of clovaai/wsolevaluation `wsol/method/spg.py` (`get_mask`,
`mask_fg`, `mask_bg`, `loss_attention`, `get_loss`) one pixel and one image at a time. Defaults
are checked against the numbers of its `config.py` typed here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

from backbone_testing import torch_one_thread  # noqa: F401  (autouse fixture)
from wsolax import registry
from wsolax.config import base_config, load_config
from wsolax.methods.spg import (BENCHMARK_HPARAMS, BENCHMARK_STAGES, SPGHparams, class_attention,
                                fused_attention, masked_bce, min_max_normalize, pseudo_labels,
                                spg_apply, spg_losses, upsample)
from wsolax.models.wsol_model import init_key, init_variables
from wsolax.training.objectives import build_objective

# numerics (CI's AVX2 rerun): the float32 comparisons with the references and by-hand values; the
# defaults, shapes, determinism, which parameters train and the draws' statistics are left out.

IMAGE, BATCH = 32, 4


def _rng(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ oracles
def torch_upsample(maps: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(np.asarray(maps, np.float64))[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def loop_mask(guide: np.ndarray, high: float, low: float, min_fg: int = 30,
              ratio: float = 0.7) -> np.ndarray:
    """The reference's mask, pixel by pixel: 255 undecided, 1 foreground, 0 background."""
    b, h, w = guide.shape
    mask = np.full((b, h, w), 255.0)
    for i in range(b):
        above = [(y, x) for y in range(h) for x in range(w) if guide[i, y, x] > high]
        if len(above) < min_fg:
            peak = max(guide[i, y, x] for y in range(h) for x in range(w))
            above = [(y, x) for y in range(h) for x in range(w) if guide[i, y, x] > peak * ratio]
        for y, x in above:
            mask[i, y, x] = 1.0
    for i in range(b):
        for y in range(h):
            for x in range(w):
                if guide[i, y, x] < low:
                    mask[i, y, x] = 0.0
    return mask


def torch_bce_ignoring_255(logits: np.ndarray, mask: np.ndarray) -> float:
    keep = mask.reshape(-1) < 255
    return float(torch.nn.BCEWithLogitsLoss()(torch.from_numpy(logits.reshape(-1)[keep]),
                                              torch.from_numpy(mask.reshape(-1)[keep])))


def loop_normalize(maps: np.ndarray) -> np.ndarray:
    return np.stack([(m - m.min()) / (m.max() - m.min()) for m in maps])


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_terms(out: dict, labels: np.ndarray, size: int = 224, thresholds=(
        (0.7, 0.01), (0.5, 0.05), (0.7, 0.1))) -> tuple[float, float, float]:
    """get_loss's three attention terms from the reference's rules, with the oracles above."""
    (h1, l1), (h2, l2), (h3, l3) = thresholds
    maps = np.asarray(out["maps"], np.float64)
    b1, b2, c = (np.asarray(out[k], np.float64) for k in ("logits_b1", "logits_b2", "logits_c"))
    up_all = np.stack([torch_upsample(maps[..., k], size) for k in range(maps.shape[-1])], -1)
    attention = loop_normalize(up_all[np.arange(len(labels)), ..., labels])
    fused = (sigmoid(torch_upsample(b1, size)) + sigmoid(torch_upsample(b2, size))) / 2
    b2i = sigmoid(torch_upsample(b2, size))
    return (torch_bce_ignoring_255(torch_upsample(b2, size), loop_mask(attention, h1, l1)),
            torch_bce_ignoring_255(torch_upsample(b1, size), loop_mask(b2i, h2, l2)),
            torch_bce_ignoring_255(torch_upsample(c, size), loop_mask(fused, h3, l3)))


# ------------------------------------------------------------------ defaults and checks
def test_defaults_are_the_benchmarks():
    hp = SPGHparams()
    # config.py: --spg_threshold_1h 0.7, 1l 0.01, 2h 0.5, 2l 0.05, 3h 0.7, 3l 0.1
    assert (hp.threshold_1h, hp.threshold_1l, hp.threshold_2h, hp.threshold_2l,
            hp.threshold_3h, hp.threshold_3l) == (0.7, 0.01, 0.5, 0.05, 0.7, 0.1)
    # spg.py: nn.Upsample(size=(224, 224)); mask_fg: `< 30` pixels -> `max * 0.7`
    assert (hp.mask_size, hp.min_foreground, hp.fallback_ratio) == (224, 30, 0.7)
    # vgg.py / resnet.py / inception.py widths, inception.py's F.dropout(..., 0.5)
    assert BENCHMARK_HPARAMS["vgg16_gap"] == {"b_features": 512, "c_features": 512,
                                              "a3_features": (512, 512), "dropout": 0.0}
    assert BENCHMARK_HPARAMS["resnet50"] == {"b_features": 1024, "c_features": 512,
                                             "a3_features": (), "dropout": 0.0}
    assert BENCHMARK_HPARAMS["inception_v3"] == {"b_features": 512, "c_features": 512,
                                                 "a3_features": (1024, 1024), "dropout": 0.5}
    assert BENCHMARK_STAGES == {"vgg16_gap": ("pool4", "conv5_3"),
                                "resnet50": ("layer3_0", "layer3"),
                                "inception_v3": ("extra_pool", "Mixed_6d")}


@pytest.mark.parametrize("key,value,field", [
    ({"threshold_2l": 0.6}, None, "threshold_2l"), ({"mask_size": 0}, None, "mask_size"),
    ({"dropout": 1.0}, None, "dropout"), ({"a3_features": (8, 0)}, None, "a3_features"),
    ({"fallback_ratio": 0.0}, None, "fallback_ratio")])
def test_bad_values_are_named_by_their_config_key(key, value, field):
    with pytest.raises(ValueError, match=rf"model\.methods\.spg\.{field}"):
        SPGHparams(**key)


# ------------------------------------------------------------------ upsampling and attention
@pytest.mark.numerics
@pytest.mark.parametrize("h,w,size", [(4, 4, 32), (14, 14, 224), (7, 5, 224), (3, 3, 3),
                                      (9, 6, 4)])
def test_upsample_is_torchs_bilinear(h, w, size):
    maps = _rng(h * w).normal(size=(3, h, w))
    ours = np.asarray(upsample(jnp.asarray(maps, jnp.float32), size))
    # torch resizes both axes to `size`; our matrices do the same one axis at a time
    np.testing.assert_allclose(ours, torch_upsample(maps, size), atol=2e-6)


@pytest.mark.numerics
def test_min_max_normalisation_and_class_attention_by_hand():
    maps = np.zeros((1, 2, 2, 3), np.float32)
    maps[0, :, :, 1] = [[1.0, 3.0], [2.0, 5.0]]
    maps[0, :, :, 2] = 7.0  # constant
    att = class_attention(jnp.asarray(maps), jnp.asarray([1]), size=2)  # 2 -> 2 is the identity
    np.testing.assert_allclose(np.asarray(att)[0], [[0.0, 0.5], [0.25, 1.0]], rtol=1e-6)
    # A constant map: 0/0 in the reference; zeros here (all background), never NaN.
    flat = class_attention(jnp.asarray(maps), jnp.asarray([2]), size=2)
    np.testing.assert_array_equal(np.asarray(flat), 0.0)
    assert np.asarray(min_max_normalize(jnp.full((2, 3, 3), 4.0))).max() == 0.0


@pytest.mark.numerics
def test_attention_is_normalised_after_upsampling():
    # The upsampled map's extremes are not the small map's (no output pixel sits on a source
    # pixel at 4 -> 16): normalising first would differ.
    maps = _rng(3).normal(size=(2, 4, 4, 5)).astype(np.float32)
    labels = np.array([4, 1])
    att = np.asarray(class_attention(jnp.asarray(maps), jnp.asarray(labels), size=16))
    expected = loop_normalize(torch_upsample(maps[np.arange(2), ..., labels], 16))
    np.testing.assert_allclose(att, expected, atol=1e-6)
    assert att.min() == 0.0 and att.max() == 1.0


@pytest.mark.numerics
def test_fused_attention_by_hand_and_detached():
    b1 = jnp.asarray([[[0.0, 2.0], [-1.0, 1.0]]])
    b2 = jnp.asarray([[[1.0, -2.0], [0.0, 3.0]]])
    fused = np.asarray(fused_attention(b1, b2, size=2))
    expected = (sigmoid(np.asarray(b1)) + sigmoid(np.asarray(b2))) / 2
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    g1, g2 = jax.grad(lambda a, b: fused_attention(a, b, 2).sum(), argnums=(0, 1))(b1, b2)
    assert not np.asarray(g1).any() and not np.asarray(g2).any()  # `.detach().clone()`


# ------------------------------------------------------------------ masks
@pytest.mark.numerics
def test_pseudo_labels_by_hand():
    # Image 0: 3 pixels strictly above high = 0.6 (0.6 itself is not: `>`), so no fallback with
    # min_foreground 2; strictly below low = 0.2 is background (0.2 itself is not: `<`).
    # Image 1: only 1 pixel above 0.6 < min_foreground 2 -> fallback threshold 0.7 * max = 0.63:
    # 0.65 and 0.9 are foreground; 0.1 is background; the rest undecided.
    # Image 2: exactly min_foreground = 2 pixels above 0.6 (1.0, 0.65): no fallback (`< 30`), so
    # 0.65 stays foreground although the fallback's 0.7 x 1.0 would drop it.
    guide = jnp.asarray([[[0.9, 0.6, 0.7], [0.2, 0.1, 0.8], [0.0, 0.5, 0.3]],
                         [[0.9, 0.6, 0.65], [0.2, 0.1, 0.55], [0.3, 0.5, 0.3]],
                         [[1.0, 0.65, 0.3], [0.3, 0.3, 0.3], [0.3, 0.3, 0.1]]])
    target, valid = pseudo_labels(guide, 0.6, 0.2, min_foreground=2, fallback_ratio=0.7)
    fg0 = [[1, 0, 1], [0, 0, 1], [0, 0, 0]]
    bg0 = [[0, 0, 0], [0, 1, 0], [1, 0, 0]]
    fg1 = [[1, 0, 1], [0, 0, 0], [0, 0, 0]]
    bg1 = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    fg2 = [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    bg2 = [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    np.testing.assert_array_equal(np.asarray(valid),
                                  np.array([fg0, fg1, fg2]) | np.array([bg0, bg1, bg2]))
    np.testing.assert_array_equal(np.asarray(target), [fg0, fg1, fg2])


@pytest.mark.numerics
def test_background_wins_over_a_fallback_foreground():
    # Max 0.1 -> fallback threshold 0.07: 0.1 and 0.08 are foreground by the fallback, but both
    # are below low = 0.09 or not: mask_bg runs last, so 0.08 (< 0.09) ends as background.
    guide = jnp.asarray([[[0.1, 0.08], [0.05, 0.0]]])
    target, valid = pseudo_labels(guide, 0.5, 0.09, min_foreground=30)
    np.testing.assert_array_equal(np.asarray(valid), [[[True, True], [True, True]]])
    np.testing.assert_array_equal(np.asarray(target), [[[1.0, 0.0], [0.0, 0.0]]])


@pytest.mark.numerics
@pytest.mark.parametrize("high,low", [(0.7, 0.01), (0.5, 0.05), (0.97, 0.1)])
def test_pseudo_labels_match_the_literal_loop(high, low):
    rng = _rng(int(high * 100))
    guide = rng.uniform(size=(3, 24, 24)) ** 3  # skewed: few pixels above high in some images
    guide[2] *= 0.5
    mask = loop_mask(guide, high, low, min_fg=30)
    target, valid = pseudo_labels(jnp.asarray(guide), high, low)
    np.testing.assert_array_equal(np.asarray(valid), mask < 255)
    np.testing.assert_array_equal(np.asarray(target)[mask < 255], mask[mask < 255])
    assert (mask == 1).any() and (mask == 0).any() and (mask == 255).any()


# ------------------------------------------------------------------ loss terms
@pytest.mark.numerics
def test_masked_bce_by_hand():
    logits = jnp.asarray([[[0.0, 2.0, -1.0]]])
    target = jnp.asarray([[[1.0, 0.0, 1.0]]])
    valid = jnp.asarray([[[True, True, False]]])
    # pixel 0: -log(sigmoid(0)) = log 2; pixel 1: -log(1 - sigmoid(2)) = 2 + log(1 + e^-2)
    expected = (np.log(2) + 2 + np.log1p(np.exp(-2.0))) / 2
    np.testing.assert_allclose(float(masked_bce(logits, target, valid)), expected, rtol=1e-6)
    assert float(masked_bce(logits, target, jnp.zeros_like(valid))) == 0.0


def _random_out(seed, b=3, h=5, w=5, k=4):
    rng = _rng(seed)
    return {"maps": jnp.asarray(rng.normal(size=(b, h, w, k)), jnp.float32),
            "logits_b1": jnp.asarray(rng.normal(size=(b, h, w)) * 2, jnp.float32),
            "logits_b2": jnp.asarray(rng.normal(size=(b, h, w)) * 2, jnp.float32),
            "logits_c": jnp.asarray(rng.normal(size=(b, h, w)) * 2, jnp.float32),
            "logits": jnp.zeros((b, k), jnp.float32)}


@pytest.mark.numerics
@pytest.mark.parametrize("seed", [0, 1])
def test_the_three_terms_are_the_references(seed):
    out = _random_out(seed)
    labels = np.array([3, 0, 2])
    ours = spg_losses(out, jnp.asarray(labels), SPGHparams())
    expected = reference_terms(out, labels)
    np.testing.assert_allclose([float(t) for t in ours], expected, rtol=2e-5)


@pytest.mark.numerics
def test_loss_is_cross_entropy_plus_the_three_terms_weighted_one():
    out = _random_out(4)
    out["logits"] = jnp.asarray(_rng(5).normal(size=(3, 4)), jnp.float32)
    labels = jnp.asarray([1, 1, 0])
    terms, metrics = registry.get_method("spg").loss(SPGHparams(), 0)(out, {"label": labels}, 0)
    expected = reference_terms(out, np.asarray(labels))
    np.testing.assert_allclose([float(t) for t in terms], expected, rtol=2e-5)
    assert set(metrics) == {"loss_spg_b2", "loss_spg_b1", "loss_spg_c"}
    with pytest.raises(ValueError, match="class indices"):
        registry.get_method("spg").loss(SPGHparams(), 0)(out, {"label": jnp.eye(4)[:3]}, 0)


def test_no_gradient_flows_through_the_masks():
    out = _random_out(6)
    labels = jnp.asarray([0, 1, 2])

    def term(i, key):
        return lambda v: spg_losses({**out, key: v}, labels, SPGHparams())[i]
    # B2's own term trains B2; B1's term reads B2 only through sigmoid(B2)'s mask; C's term reads
    # B1 and B2 only through the fused attention; no term trains the class maps.
    assert np.abs(np.asarray(jax.grad(term(0, "logits_b2"))(out["logits_b2"]))).sum() > 0
    assert not np.asarray(jax.grad(term(1, "logits_b2"))(out["logits_b2"])).any()
    assert np.abs(np.asarray(jax.grad(term(1, "logits_b1"))(out["logits_b1"]))).sum() > 0
    for key in ("logits_b1", "logits_b2"):
        assert not np.asarray(jax.grad(term(2, key))(out[key])).any()
    for i in range(3):
        assert not np.asarray(jax.grad(term(i, "maps"))(out["maps"])).any()


# ------------------------------------------------------------------ the model on the tiny backbone
def tiny_cfg(dtype="float32", inserts=(("stage2", "spg"), ("stage3", "spg")), **spg):
    c = base_config()
    c.model.width = 4
    c.model.dtype = dtype
    c.model.inserts = inserts
    c.model.methods.spg = {"b_features": 8, "c_features": 8, "a3_features": (8,),
                           "mask_size": IMAGE, "min_foreground": 2, **spg}
    return c


@functools.lru_cache(maxsize=None)
def _tiny(dtype="float32", dropout=0.0):
    cfg = tiny_cfg(dtype, dropout=dropout)
    model = registry.build_model(cfg)
    variables = init_variables(model, init_key(0), (1, IMAGE, IMAGE, 3))
    rng = _rng(1)
    images = jnp.asarray(rng.normal(size=(BATCH, IMAGE, IMAGE, 3)), jnp.float32)
    labels = jnp.asarray([0, 3, 5, 9], jnp.int32)
    return cfg, model, variables, images, labels


def test_parameters_one_shared_b_head_and_per_branch_convs():
    _, _, variables, _, _ = _tiny()
    head, backbone = variables["params"]["head"], variables["params"]["backbone"]
    assert set(head) == {"a3_0", "classes", "b_shared", "c"}
    assert set(head["b_shared"]) == {"conv", "score"} and set(head["c"]) == {"conv", "score"}
    assert head["b_shared"]["score"]["kernel"].shape == (1, 1, 8, 1)
    assert head["classes"]["kernel"].shape == (1, 1, 8, 10) and "bias" in head["classes"]
    # SPG_B_1a / SPG_B_2a: one conv per tap, from each tap's own width (stage2 8, stage3 16)
    assert backbone["stage2_insert0"]["conv"]["kernel"].shape == (3, 3, 8, 8)
    assert backbone["stage3_insert1"]["conv"]["kernel"].shape == (3, 3, 16, 8)
    # Xavier-uniform kernels, zero biases (initialize_weights(..., 'xavier'))
    k = np.asarray(head["b_shared"]["conv"]["kernel"])
    assert np.abs(k).max() <= np.sqrt(6 / (9 * 8 + 9 * 8)) and not np.asarray(
        head["b_shared"]["conv"]["bias"]).any()


def _torch_conv(x_nhwc, kernel_hwio, bias, padding):
    x = torch.from_numpy(np.asarray(x_nhwc, np.float64)).permute(0, 3, 1, 2)
    w = torch.from_numpy(np.asarray(kernel_hwio, np.float64)).permute(3, 2, 0, 1)
    y = F.conv2d(x, w, torch.from_numpy(np.asarray(bias, np.float64)), padding=padding)
    return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.numerics
def test_both_b_branches_use_the_one_shared_head():
    _, model, variables, images, _ = _tiny()
    out, _ = spg_apply(model, variables, images, train=True)
    _, state = model.apply(variables, images, train=True, mutable=["intermediates"])
    taps = state["intermediates"]["backbone"]
    shared = variables["params"]["head"]["b_shared"]
    for key, tap in (("logits_b1", "stage2_insert0"), ("logits_b2", "stage3_insert1")):
        b = taps[tap]["spg_b"][0]
        hidden = np.maximum(_torch_conv(b, shared["conv"]["kernel"], shared["conv"]["bias"], 1), 0)
        score = _torch_conv(hidden, shared["score"]["kernel"], shared["score"]["bias"], 0)[..., 0]
        np.testing.assert_allclose(np.asarray(out[key]), score, atol=1e-5)
    assert out["logits_b1"].shape == (BATCH, 8, 8) and out["logits_b2"].shape == (BATCH, 4, 4)


@pytest.mark.numerics
def test_taps_leave_the_backbone_path_and_do_no_work_at_evaluation():
    cfg, model, variables, images, _ = _tiny()
    plain = base_config()
    plain.model.width = 4
    plain_model = registry.build_model(plain)
    params = {k: v for k, v in variables["params"]["backbone"].items() if "_insert" not in k}
    feats = plain_model.apply({"params": {"backbone": params}}, images,
                              method=lambda m, x: m.backbone(x, train=False))
    out = model.apply(variables, images, train=False)
    np.testing.assert_array_equal(np.asarray(out["features"]), np.asarray(feats))
    # A plain evaluation collects nothing and never runs a tap's conv.
    ran = []
    with jax.disable_jit():
        import flax.linen as nn

        def spy(next_fun, args, kwargs, context):
            if isinstance(context.module, nn.Conv) and "_insert" in str(context.module.scope.path):
                ran.append(context.module.scope.path)
            return next_fun(*args, **kwargs)
        with nn.intercept_methods(spy):
            model.apply(variables, images, train=False)
    assert ran == []


@pytest.mark.numerics
def test_eval_cams_and_logits_are_the_class_convs_maps():
    _, model, variables, images, _ = _tiny()
    head = variables["params"]["head"]
    out = model.apply(variables, images, train=False)
    x = np.maximum(_torch_conv(out["features"], head["a3_0"]["kernel"], head["a3_0"]["bias"], 1),
                   0)
    maps = _torch_conv(x, head["classes"]["kernel"], head["classes"]["bias"], 0)  # bias included
    np.testing.assert_allclose(np.asarray(out["cams"]), maps, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["logits"]), maps.mean(axis=(1, 2)), atol=1e-5)
    classes = jnp.asarray([[2, 7], [0, 0], [9, 1], [5, 3]])
    picked = model.apply(variables, images, train=False, cam_classes=classes)
    np.testing.assert_allclose(np.asarray(picked["cams"]),
                               np.take_along_axis(maps, np.asarray(classes)[:, None, None, :], -1),
                               atol=1e-5)
    again = model.apply(variables, images, train=False, cam_classes=classes)
    np.testing.assert_array_equal(np.asarray(again["cams"]), np.asarray(picked["cams"]))
    # The training forward's logits are the same class maps' mean (no dropout here).
    train_out, _ = spg_apply(model, variables, images, train=True)
    np.testing.assert_allclose(np.asarray(train_out["maps"]), maps, atol=1e-5)


def _term_grads(term: str) -> dict[str, float]:
    """{parameter group: sum |gradient|} of one loss term at the initial parameters."""
    cfg, model, variables, images, labels = _tiny()
    hp = registry.selected_methods(cfg.model)[0].hparams

    def loss_of(params):
        out, _ = spg_apply(model, {**variables, "params": params}, images, train=True)
        if term == "ce":
            return optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
        return spg_losses(out, labels, hp)[("b2", "b1", "c").index(term)]

    grads = jax.grad(loss_of)(variables["params"])  # eager: cheaper here than four compilations
    return {name: float(sum(np.abs(np.asarray(g)).sum() for g in jax.tree.leaves(sub)))
            for name, sub in _groups(grads).items()}


def _groups(grads):
    head, backbone = grads["head"], grads["backbone"]
    return {"classes": head["classes"], "a3": head["a3_0"], "b_shared": head["b_shared"],
            "c": head["c"], "tap1": backbone["stage2_insert0"], "tap2": backbone["stage3_insert1"],
            # tiny's convs: 0 stem, 1-2 stage2, 3-4 stage3, 5-6 stage4
            "before_tap1": [backbone[f"ConvGNReLU_{i}"] for i in range(3)],
            "tap1_to_tap2": [backbone[f"ConvGNReLU_{i}"] for i in (3, 4)],
            "after_tap2": [backbone[f"ConvGNReLU_{i}"] for i in (5, 6)]}


# term -> the parameter groups it trains (every other group gets exactly zero gradient)
TRAINS = {
    "ce": {"classes", "a3", "before_tap1", "tap1_to_tap2", "after_tap2"},
    "b2": {"b_shared", "tap2", "before_tap1", "tap1_to_tap2"},  # its mask: the detached CAM
    "b1": {"b_shared", "tap1", "before_tap1"},  # its mask: sigmoid(B2), through no gradient
    "c": {"c", "a3", "before_tap1", "tap1_to_tap2", "after_tap2"},  # mask: detached B1, B2
}


@pytest.mark.slow  # ~5-10 s per term on 2 busy cores
@pytest.mark.parametrize("term", sorted(TRAINS))
def test_each_term_trains_what_the_reference_trains(term):
    norms = _term_grads(term)
    assert {k for k, v in norms.items() if v > 0} == TRAINS[term], norms


@pytest.mark.numerics
@pytest.mark.slow
def test_train_step_jit_equals_eager_and_is_a_function_of_the_key():
    cfg, model, variables, images, labels = _tiny(dropout=0.5)
    objective = build_objective(cfg, steps_per_epoch=10)
    batch = {"image": images, "label": labels}

    def loss(key):
        return objective(model, variables, batch, key, 0)[0]
    eager = float(loss(jax.random.key(3)))
    jitted = jax.jit(loss)
    assert np.isclose(float(jitted(jax.random.key(3))), eager, rtol=1e-5)
    assert float(jitted(jax.random.key(3))) == float(jitted(jax.random.key(3)))
    assert float(jitted(jax.random.key(4))) != float(jitted(jax.random.key(3)))  # dropout
    out = model.apply(variables, images, train=False)  # evaluation needs no key
    np.testing.assert_array_equal(np.asarray(out["cams"]),
                                  np.asarray(model.apply(variables, images, train=False)["cams"]))


def test_dropout_keeps_half_and_scales_by_two_at_5_sigma():
    # InceptionSpg's F.dropout(x, 0.5, training): each activation zeroed with probability 0.5,
    # survivors x 2. Observed through the head's trunk (no a3 convs: one dropout).
    from wsolax.methods.spg import SPGHead

    head = SPGHead(num_classes=3, b_features=4, c_features=4, dropout=0.5)
    x = jnp.ones((2, 4, 4, 5))
    params = head.init(jax.random.key(0), x)
    trunk = jax.jit(lambda k: head.apply(params, x, True, method=SPGHead._trunk,
                                         rngs={"dropout": k}))
    zeros, n = 0, 0
    for k in range(40):
        y = np.asarray(trunk(jax.random.key(k)))
        assert set(np.unique(y)) <= {0.0, 2.0}
        zeros += (y == 0).sum()
        n += y.size
    assert abs(zeros - n / 2) < 5 * np.sqrt(n * 0.25), (zeros, n)


@pytest.mark.slow
def test_bfloat16_step_is_finite_and_computes_in_bfloat16():
    cfg, model, variables, images, labels = _tiny("bfloat16")
    out, _ = spg_apply(model, variables, images, train=True)
    assert out["maps"].dtype == jnp.float32  # widened for the loss
    _, state = model.apply(variables, images, train=True, mutable=["intermediates"])
    assert state["intermediates"]["backbone"]["stage2_insert0"]["spg_b"][0].dtype == jnp.bfloat16
    loss = build_objective(cfg, 10)(model, variables, {"image": images, "label": labels},
                                    jax.random.key(0), 0)[0]
    assert np.isfinite(float(loss))
    ref = _tiny()
    loss32 = build_objective(ref[0], 10)(ref[1], ref[2], {"image": images, "label": labels},
                                         jax.random.key(0), 0)[0]
    assert abs(float(loss) - float(loss32)) < 0.05 * float(loss32)


def test_taps_are_ordered_by_stage_and_two_are_required():
    cfg = tiny_cfg(inserts=(("stage3", "spg"), ("stage2", "spg")))  # listed out of order
    model = registry.build_model(cfg)
    variables = init_variables(model, init_key(0), (1, IMAGE, IMAGE, 3))
    out, _ = spg_apply(model, variables, jnp.zeros((1, IMAGE, IMAGE, 3)), train=True)
    assert out["logits_b1"].shape[1:] == (8, 8)  # stage2's tap is B1 (the earlier stage)
    one = tiny_cfg(inserts=(("stage3", "spg"),))
    model = registry.build_model(one)
    variables = init_variables(model, init_key(0), (1, IMAGE, IMAGE, 3))
    with pytest.raises(ValueError, match=r"'model\.inserts' must place 'spg' at exactly two"):
        spg_apply(model, variables, jnp.zeros((1, IMAGE, IMAGE, 3)), train=True)


def test_synthetic_config_builds_with_scaled_pixel_settings():
    cfg = load_config("configs/synthetic_spg.py")
    assert cfg.model.inserts == (("stage3", "spg"), ("stage4", "spg"))
    hp = registry.selected_methods(cfg.model)[0].hparams
    assert hp.mask_size == cfg.data.crop_size == 64
    assert hp.min_foreground == 2  # 30 * (64 / 224)^2 = 2.45
    assert (hp.threshold_1h, hp.threshold_3l) == (0.7, 0.1)
    assert load_config("configs/synthetic_spg.py:runlocal").model.inserts == cfg.model.inserts


# ------------------------------------------------------------------ the benchmark's backbones
@pytest.mark.slow
@pytest.mark.parametrize("backbone,b1,b2,final", [
    ("vgg16_gap", (14, 14, 512), (14, 14, 512), (14, 14, 512)),
    ("resnet50", (14, 14, 1024), (14, 14, 1024), (14, 14, 2048)),
    ("inception_v3", (14, 14, 288), (14, 14, 768), (14, 14, 768)),
])
def test_benchmark_placements_at_224(backbone, b1, b2, final):
    """What each branch reads on the benchmark's backbones (shapes at 224 px, traced only)."""
    c = base_config()
    c.model.backbone = backbone
    c.data.num_classes = 7
    c.model.inserts = tuple((s, "spg") for s in BENCHMARK_STAGES[backbone])
    c.model.methods.spg = dict(BENCHMARK_HPARAMS[backbone])
    model = registry.build_model(c)
    x = jnp.zeros((1, 224, 224, 3))

    def run(k):
        v = model.init({"params": k, "dropout": k}, x, train=False)
        _, state = model.apply(v, x, train=True, mutable=["batch_stats", "intermediates"],
                               capture_intermediates=lambda m, method: m.name == "backbone")
        out, _ = spg_apply(model, v, x, train=True, rngs={"dropout": k})
        return v, state, out

    v, state, out = jax.eval_shape(run, init_key(0))
    taps = {k: s["spg_b"][0].shape for k, s in state["intermediates"]["backbone"].items()
            if "spg_b" in s}
    names = [f"{s}_insert{i}" for i, s in enumerate(BENCHMARK_STAGES[backbone])]
    width = BENCHMARK_HPARAMS[backbone]["b_features"]
    assert taps == {names[0]: (1, *b1[:2], width), names[1]: (1, *b2[:2], width)}
    tap_in = {n: v["params"]["backbone"][n]["conv"]["kernel"].shape[2] for n in names}
    assert tap_in == {names[0]: b1[2], names[1]: b2[2]}
    assert state["intermediates"]["backbone"]["__call__"][0].shape == (1, *final)
    assert out["logits"].shape == (1, 7) and out["maps"].shape == (1, 14, 14, 7)
    assert out["logits_b1"].shape == out["logits_c"].shape == (1, 14, 14)
    head = v["params"]["head"]
    assert [head[f"a3_{i}"]["kernel"].shape[-1] for i in range(2) if f"a3_{i}" in head] == list(
        BENCHMARK_HPARAMS[backbone]["a3_features"])
    c_in = (BENCHMARK_HPARAMS[backbone]["a3_features"] or final[2:])[-1]  # the trunk's width
    assert head["c"]["conv"]["kernel"].shape[2:] == (c_in, 512)
    assert head["classes"]["kernel"].shape == (1, 1, c_in, 7)
    assert "wsol_conv6" not in v["params"]["backbone"]
    assert "wsol_head_conv1" not in v["params"]["backbone"]
