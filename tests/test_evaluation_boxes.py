"""Fast box path vs the literal OpenCV oracle: per-threshold IoUs identical.

Every map family below stresses one way contours can be subtle: plateaus
and ties (V1 order), holes and nested islands (hole contours, filled
areas), diagonal 8-connectivity, components on the border (OpenCV's zero
padding), single pixels, many components, and empty masks.

Most sweeps use 250 thresholds (interval 0.004, which still hits almost
every cut 0..254 when max q = 255) to keep the literal oracle affordable;
one sweep uses the default 1000.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsolax.evaluation.boxes import box_iou_curves
from wsolax.evaluation.oracle import literal_box_ious
from wsolax.evaluation.protocol import (make_thresholds, quantize_scoremap,
                                        threshold_cuts)
from wsolax.evaluation.reference_scoremap import normalize_scoremap_np
from wsolax.evaluation.synthetic import cam_like_scoremaps, random_boxes

THRESHOLDS = make_thresholds(0.004)


# --------------------------------------------------------------- map families
def smooth(rng, h, w):
    grid = (int(rng.integers(2, 8)), int(rng.integers(2, 8)))
    return cam_like_scoremaps(rng, 1, (h, w), grid)[0]


def noise(rng, h, w):
    return normalize_scoremap_np(rng.random((h, w), dtype=np.float32))


def plateaus(rng, h, w):
    """Few levels, so many pixels share a value and areas tie."""
    levels = int(rng.integers(2, 5))
    small = rng.integers(0, levels, (int(rng.integers(1, 6)),
                                     int(rng.integers(1, 6))))
    blocky = cv2.resize(small.astype(np.float32), (w, h),
                        interpolation=cv2.INTER_NEAREST)
    return normalize_scoremap_np(blocky)


def salt(rng, h, w):
    """Sparse single pixels: many components of area 0 (V1 ties)."""
    m = (rng.random((h, w)) < rng.uniform(0.02, 0.2)).astype(np.float32)
    return normalize_scoremap_np(m * rng.integers(1, 4, (h, w)))


def checkerboard(rng, h, w):
    """Diagonal-only links: one 8-connected blob full of 1-pixel holes."""
    yy, xx = np.mgrid[:h, :w]
    board = ((yy + xx) % 2).astype(np.float32)
    board[rng.random((h, w)) < 0.1] = 0.5
    return normalize_scoremap_np(board)


def diagonals(rng, h, w):
    """Diagonal and anti-diagonal lines: zero-area components, diamonds."""
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        step = 1 if rng.random() < 0.5 else -1
        value = rng.uniform(0.2, 1.0)
        for i in range(int(rng.integers(2, max(h, w) + 2))):
            if 0 <= y + i < h and 0 <= x + step * i < w:
                m[y + i, x + step * i] = value
    return normalize_scoremap_np(m)


def rings(rng, h, w):
    """Concentric rings at several levels: holes with islands inside, which
    open and close as the threshold moves."""
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        radius = int(rng.integers(2, max(3, min(h, w))))
        for r in range(radius, 0, -int(rng.integers(1, 4))):
            cv2.circle(m, (cx, cy), r, float(rng.uniform(0.1, 1.0)),
                       thickness=int(rng.integers(1, 3)))
    return normalize_scoremap_np(m)


def nested_boxes(rng, h, w):
    """Filled rectangles with holes punched in, some touching the border."""
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = int(rng.integers(-2, w)), int(rng.integers(-2, h))
        x1 = x0 + int(rng.integers(1, w + 1))
        y1 = y0 + int(rng.integers(1, h + 1))
        cv2.rectangle(m, (x0, y0), (x1, y1), float(rng.uniform(0.1, 1.0)), -1)
        cv2.rectangle(m, (x0 + 2, y0 + 2), (x1 - 2, y1 - 2),
                      float(rng.uniform(0, 0.5)), -1)
    return normalize_scoremap_np(m)


def diamonds(rng, h, w):
    """One-pixel-wide diagonal rings: zero own area but a hole, the case
    where a hole contour ties with its parent's area."""
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        r = int(rng.integers(1, 5))
        value = float(rng.uniform(0.3, 1.0))
        for i in range(r + 1):
            for dy, dx in ((i - r, i), (i, r - i), (r - i, -i), (-i, i - r)):
                if 0 <= cy + dy < h and 0 <= cx + dx < w:
                    m[cy + dy, cx + dx] = value
    return normalize_scoremap_np(m)


def constant(rng, h, w):
    """Constant or NaN maps normalise to zeros: empty masks everywhere."""
    return normalize_scoremap_np(np.full((h, w), rng.random(), np.float32))


def mixture(rng, h, w):
    """Smooth map with noise, plateaus and holes layered on top."""
    m = smooth(rng, h, w) + 0.3 * nested_boxes(rng, h, w)
    m[rng.random((h, w)) < 0.05] = rng.random()
    return normalize_scoremap_np(m.astype(np.float32))


FAMILIES = [smooth, noise, plateaus, salt, checkerboard, diagonals, rings,
            nested_boxes, diamonds, constant, mixture]


def random_gt(rng, h, w):
    boxes = random_boxes(rng, w, h, int(rng.integers(1, 4)))
    if rng.random() < 0.2:  # whole-image box: matches border components
        boxes[0] = (0, 0, w - 1, h - 1)
    return boxes


def assert_identical(scoremap, gt, thresholds):
    fast = box_iou_curves(quantize_scoremap(scoremap), gt, thresholds)
    v1, v2 = literal_box_ious(scoremap, gt, thresholds)
    np.testing.assert_array_equal(fast.v1, v1)
    np.testing.assert_array_equal(fast.v2, v2)
    return fast


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_fast_equals_oracle_per_family(family):
    rng = np.random.default_rng(100 + FAMILIES.index(family))
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(6, 40, 2))
        assert_identical(family(rng, h, w), random_gt(rng, h, w), THRESHOLDS)


def test_fast_equals_oracle_tiny_and_extreme_shapes():
    rng = np.random.default_rng(7)
    for h, w in [(1, 1), (1, 7), (7, 1), (2, 2), (2, 9), (3, 3), (64, 5)]:
        for family in FAMILIES:
            assert_identical(family(rng, h, w), random_gt(rng, h, w),
                             THRESHOLDS)


def test_fast_equals_oracle_default_thresholds():
    """The full 1000-threshold sweep of the protocol, on CAM-like maps and
    the trickiest families."""
    rng = np.random.default_rng(11)
    thresholds = make_thresholds()
    for family in (smooth, rings, salt, plateaus, mixture):
        for _ in range(3):
            h, w = (int(v) for v in rng.integers(16, 48, 2))
            assert_identical(family(rng, h, w), random_gt(rng, h, w),
                             thresholds)


def test_fallback_is_rare_on_cam_like_maps():
    """Ties send a cut to literal cv2; on CAM-like maps that must stay rare
    (otherwise the fast path silently loses its speed)."""
    rng = np.random.default_rng(3)
    maps = cam_like_scoremaps(rng, 40, (64, 64), (8, 8))
    cuts = fallbacks = 0
    for m in maps:
        result = assert_identical(m, random_gt(rng, 64, 64), THRESHOLDS)
        cuts += result.num_cuts
        fallbacks += result.num_fallback
    assert fallbacks / cuts < 0.02


def test_fallback_cuts_are_exercised():
    """Plateau ties do reach the fallback, and stay exact there."""
    rng = np.random.default_rng(5)
    total = 0
    for _ in range(10):
        total += assert_identical(salt(rng, 20, 20), random_gt(rng, 20, 20),
                                  THRESHOLDS).num_fallback
    assert total > 0


def test_threshold_cuts_match_python_int():
    """Vectorised cuts equal the reference's int(tau * np.max(q)) for every
    possible max value, at the default and a coarse interval."""
    for interval in (0.001, 0.004, 0.01, 0.25):
        thresholds = make_thresholds(interval)
        for qmax in range(256):
            q = np.array([[qmax]], np.uint8)
            expected = [int(t * np.max(q)) for t in thresholds]
            assert threshold_cuts(thresholds, qmax).tolist() == expected


def test_degenerate_and_out_of_image_gt_boxes():
    """Inverted, negative and oversized GT boxes go through the reference
    IoU formula unchanged (non-positive denominators give IoU 0)."""
    rng = np.random.default_rng(9)
    weird = [np.array([[5, 5, 2, 2]]), np.array([[-3, -3, 40, 40]]),
             np.array([[0, 0, 0, 0], [9, 3, 9, 3]]),
             np.array([[-5, -5, -6, -6]]), np.array([[3, 8, 30, 2]])]
    for gt in weird:
        for family in (smooth, rings, salt, constant):
            assert_identical(family(rng, 12, 15), gt, THRESHOLDS)
