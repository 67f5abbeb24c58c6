"""The default (exact) score-map path vs an independent float64 computation of the reference's.

The reference (wsolevaluation) casts the network's float32 CAM to float64, resizes it with
cv2.INTER_CUBIC (a float64 resize) and min-max normalises in float64.  The expected maps here
come from (a) a slow per-pixel bicubic written from OpenCV's rules -- kernel weights evaluated in
float32 with A = -0.75, products summed in float64 left to right, the horizontal pass first,
taps outside the image replicating the border -- and (b) cv2 called the way the reference calls
it, one map at a time.  Neither shares code with `wsolax.evaluation`.
"""

from __future__ import annotations

import math

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.config import ConfigError, base_config, validate
from wsolax.evaluation.reference_scoremap import reference_scoremaps
from wsolax.evaluation.reference_scoremap import prepare_scoremap_cv2
from wsolax.localization.device_scoremap import normalize_scoremaps, resize_cams

# (h, w) -> (H, W): integer upscales (the CUB/ILSVRC case), non-integer and non-square ones, a
# downscale, identity, single row.
SHAPES = [((14, 14), (224, 224)), ((7, 7), (224, 224)), ((28, 28), (224, 224)),
          ((7, 9), (30, 40)), ((14, 10), (33, 57)), ((25, 8), (33, 90)),
          ((30, 20), (7, 3)), ((5, 9), (5, 9)), ((1, 5), (3, 7))]


# ----------------------------------------------------------------- independent computation
def _cubic_taps(out_size: int, in_size: int):
    """Per output index: first source index and OpenCV's four float32 cubic weights."""
    scale = 1.0 / (out_size / in_size)
    a, one = np.float32(-0.75), np.float32(1)
    taps = []
    for d in range(out_size):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = math.floor(f)
        x = np.float32(f - np.float32(s))  # float32 arithmetic throughout, as in C++
        w0 = ((a * (x + one) - 5 * a) * (x + one) + 8 * a) * (x + one) - 4 * a
        w1 = ((a + 2) * x - (a + 3)) * x * x + one
        w2 = ((a + 2) * (one - x) - (a + 3)) * (one - x) * (one - x) + one
        w3 = one - w0 - w1 - w2
        taps.append((s - 1, [float(w) for w in (w0, w1, w2, w3)]))
    return taps


def literal_resize(cam: np.ndarray, out_hw) -> np.ndarray:
    """cv2.INTER_CUBIC of a float64 map, one output pixel at a time."""
    h, w = cam.shape
    rows = [[float(v) for v in r] for r in cam]
    across = []
    for r in rows:  # horizontal pass
        line = []
        for first, weights in _cubic_taps(out_hw[1], w):
            acc = 0.0
            for k, wk in enumerate(weights):
                acc = acc + r[min(max(first + k, 0), w - 1)] * wk
            line.append(acc)
        across.append(line)
    out = np.empty(out_hw, np.float64)
    for y, (first, weights) in enumerate(_cubic_taps(out_hw[0], h)):  # vertical pass
        src = [across[min(max(first + k, 0), h - 1)] for k in range(4)]
        for x in range(out_hw[1]):
            out[y, x] = (src[0][x] * weights[0] + src[1][x] * weights[1]
                         + src[2][x] * weights[2] + src[3][x] * weights[3])
    return out


def literal_normalize(cam: np.ndarray) -> np.ndarray:
    """The reference's normalize_scoremap, statement by statement."""
    if np.isnan(cam).any():
        return np.zeros_like(cam)
    if cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def literal_scoremap(cam32: np.ndarray, out_hw) -> np.ndarray:
    return literal_normalize(literal_resize(cam32.astype(np.float64), out_hw))


def cv2_as_the_reference(cam32: np.ndarray, out_hw) -> np.ndarray:
    resized = cv2.resize(cam32.astype(np.float64), (out_hw[1], out_hw[0]),
                         interpolation=cv2.INTER_CUBIC)
    return literal_normalize(resized)


def cams_of_kind(kind: str, shape, rng) -> np.ndarray:
    """Three float32 CAMs (what the network gives) of one kind."""
    if kind == "random":
        return np.stack([rng.random(shape, dtype=np.float32),
                         rng.normal(size=shape).astype(np.float32) * 7,
                         np.maximum(rng.normal(size=shape), 0).astype(np.float32)])
    if kind == "constant":
        return np.stack([np.full(shape, v, np.float32) for v in (0.0, 0.37, -13.25)])
    if kind == "nan":
        cams = rng.random((3, *shape), dtype=np.float32)
        cams[0, 0, 0] = np.nan
        cams[1, -1, -1] = np.nan
        cams[2] = np.nan
        return cams
    if kind == "near_constant":  # a few float32 ulps of spread around a large value
        base = np.float32(3.0)
        ulps = rng.integers(0, 4, (3, *shape)).astype(np.float32)
        cams = base + ulps * np.spacing(base)
        cams[1] = np.float32(1000.0) + ulps[1] * np.spacing(np.float32(1000.0))
        cams[2] = base
        cams[2, 0, 0] = np.nextafter(base, np.float32(4))  # a single ulp bump
        tiny = np.float32(1e-20)  # a spread of ~1e-27: no tolerance may call this constant
        cams[0] = tiny + ulps[0] * np.spacing(tiny)
        return cams.astype(np.float32)
    raise ValueError(kind)


KINDS = ["random", "constant", "nan", "near_constant"]


# ------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("src, dst", SHAPES)
def test_independent_models_agree(src, dst):
    """The per-pixel model and cv2 as the reference calls it are the same function, bit for bit
    (otherwise the comparisons below would only test cv2 against itself)."""
    rng = np.random.default_rng(0)
    for cam in cams_of_kind("random", src, rng):
        np.testing.assert_array_equal(literal_resize(cam.astype(np.float64), dst),
                                      cv2.resize(cam.astype(np.float64), dst[::-1],
                                                 interpolation=cv2.INTER_CUBIC))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("src, dst", SHAPES)
def test_exact_path_is_the_reference_bit_for_bit(src, dst, kind):
    rng = np.random.default_rng([*src, *dst, KINDS.index(kind)])
    cams = cams_of_kind(kind, src, rng)
    ours = reference_scoremaps(cams, dst)
    assert ours.dtype == np.float64 and ours.shape == (3, *dst)
    expected = np.stack([literal_scoremap(c, dst) for c in cams])
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(ours, np.stack([cv2_as_the_reference(c, dst) for c in cams]))
    # What the evaluator consumes: the 8-bit maps (boxes) and the float64 values (PxAP bins).
    np.testing.assert_array_equal((ours * 255).astype(np.uint8),
                                  (expected * 255).astype(np.uint8))
    edges = np.append(np.arange(0, 1, 0.001), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.searchsorted(edges, ours.ravel(), side="right"),
                                  np.searchsorted(edges, expected.ravel(), side="right"))
    for single, cam in zip(ours, cams):  # one map through the literal path gives the same
        np.testing.assert_array_equal(prepare_scoremap_cv2(cam, dst), single)


@pytest.mark.parametrize("src, dst", SHAPES)
def test_constant_cams(src, dst):
    """A float32 constant (what the reference's network gives) widened to float64 resizes to
    exactly that constant at every scale -- weight x value products are exact in float64 -- so
    the reference's map is all zeros; the float32 device path ripples and its min-max stretches
    the ripples to [0, 1] wherever the scale is not an identity."""
    cams = np.stack([np.full(src, v, np.float32) for v in (0.37, -13.25, 1e-3, 7e4)])
    assert (reference_scoremaps(cams, dst) == 0).all()
    if src != dst:
        device = np.asarray(normalize_scoremaps(resize_cams(jnp.asarray(cams), dst)))
        assert (device.max(axis=(1, 2)) == 1).any()


def test_float64_constant_ripples_like_the_reference():
    """A float64 CAM (e.g. a float64 model) with a value float32 cannot hold: the float64
    resize ripples by an ulp at (25, 8) -> (33, 90) and the reference stretches that to
    [0, 1]; the exact path does the same, bit for bit."""
    cam = np.full((25, 8), 0.37)
    rippled = reference_scoremaps(cam[None], (33, 90))[0]
    assert rippled.min() == 0.0 and rippled.max() == 1.0
    np.testing.assert_array_equal(rippled, literal_normalize(literal_resize(cam, (33, 90))))


def test_cam_dtypes_are_widened_exactly():
    rng = np.random.default_rng(3)
    cams32 = rng.random((2, 7, 9), dtype=np.float32)
    np.testing.assert_array_equal(reference_scoremaps(cams32, (30, 40)),
                                  reference_scoremaps(cams32.astype(np.float64), (30, 40)))
    with pytest.raises(ValueError, match="batch, h, w"):
        reference_scoremaps(cams32[0], (30, 40))


# Documented bound (docs/evaluation.md) of the opt-in float32 device path: with R the float64
# resized map and kappa = max|R| / (max R - min R), |float32 map - exact map| <= 64 (1 + kappa)
# 2^-24.  Measured maxima were about 32 (1 + kappa) 2^-24 (non-integer scales) and 8 (integer).
F32_ULPS = 64


@pytest.mark.parametrize("src, dst", SHAPES)
def test_device_float32_deviation_is_within_the_documented_bound(src, dst):
    rng = np.random.default_rng(5)
    cams = np.concatenate([
        rng.random((8, *src), dtype=np.float32),
        rng.normal(size=(8, *src)).astype(np.float32) * 7,
        (100 + rng.random((4, *src))).astype(np.float32),            # kappa ~ 100
        (3 + 1e-4 * rng.random((4, *src))).astype(np.float32),       # kappa ~ 3e4
    ])
    device = np.asarray(normalize_scoremaps(resize_cams(jnp.asarray(cams), dst)), np.float64)
    exact = np.stack([cv2_as_the_reference(c, dst) for c in cams])
    resized = np.stack([cv2.resize(c.astype(np.float64), dst[::-1],
                                   interpolation=cv2.INTER_CUBIC) for c in cams])
    spread = resized.max(axis=(1, 2)) - resized.min(axis=(1, 2))
    kappa = np.abs(resized).max(axis=(1, 2)) / spread
    bound = F32_ULPS * (1 + kappa) * 2.0 ** -24
    assert (np.abs(device - exact).max(axis=(1, 2)) <= bound).all()
    # Hence 8-bit maps within one level wherever 255 * bound < 1 (kappa below ~250).
    levels = np.abs((device * 255).astype(np.uint8).astype(int)
                    - (exact * 255).astype(np.uint8)).max(axis=(1, 2))
    assert (levels[255 * bound < 1] <= 1).all()


def test_config_validates_the_scoremap_mode():
    cfg = base_config()
    assert cfg.eval.scoremap == "exact"
    validate(cfg)
    cfg.eval.scoremap = "float32"
    with pytest.raises(ConfigError, match="eval.scoremap"):
        validate(cfg)
