"""Hand-computed metric values on tiny maps (arithmetic in the comments).

Conventions: boxes are (x0, y0, x1, y1); a contour's box is
(x, y, x + w, y + h) from cv2.boundingRect, far corner clipped to W-1/H-1;
IoU uses inclusive coordinates: inter = (min x1 - max x0 + 1) *
(min y1 - max y0 + 1), area = (x1 - x0 + 1) * (y1 - y0 + 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from wsolax.evaluation import WSOLEvaluator, best_threshold_index
from wsolax.evaluation.oracle import LiteralEvaluator

H = W = 6


def image_a():
    """A 2x3 block of 0.5 (rows 1-2, cols 1-3) and one pixel of 1.0 at
    (row 4, col 4).  Quantised: block 127 (0.5 * 255 = 127.5, truncated),
    pixel 255."""
    m = np.zeros((H, W), np.float32)
    m[1:3, 1:4] = 0.5
    m[4, 4] = 1.0
    return m


def image_b():
    """A 5x5 square of 1.0 (rows/cols 0-4) with a 1x2 hole at row 2,
    cols 2-3."""
    m = np.zeros((H, W), np.float32)
    m[0:5, 0:5] = 1.0
    m[2, 2:4] = 0.0
    return m


# Original sizes (width, height) and GT boxes in original pixels.
SIZES = {"a": (6, 6), "b": (12, 6), "c": (6, 6)}
# B is twice as wide originally: (2, 1, 9, 3) -> (int(2*6/12), int(1*6/6),
# int(9*6/12), int(3*6/6)) = (1, 1, int(4.5) = 4, 3).
GT = {"a": np.array([[1, 1, 3, 2]]), "b": np.array([[2, 1, 9, 3]]),
      "c": np.array([[1, 1, 3, 2]])}
IDS = ["a", "b", "c"]
MAPS = np.stack([image_a(), image_b(), image_a()])
LABELS = np.array([3, 7, 5])
TOP1 = np.array([3, 2, 1])  # a right, b wrong, c wrong
TOP5 = np.array([[3, 0, 1, 2, 4],   # contains 3: right
                 [2, 7, 0, 1, 4],   # contains 7: right
                 [1, 2, 3, 4, 6]])  # no 5: wrong


def evaluate(cls=WSOLEvaluator, threshold_index=None, **kwargs):
    # interval 0.25 -> taus (0, .25, .5, .75); every map has max q = 255 so
    # the cuts int(tau * 255) are (0, 63, 127, 191) and the mask is q > cut.
    evaluator = cls(GT, SIZES, input_size=(H, W), cam_curve_interval=0.25,
                    **kwargs)
    evaluator.accumulate(IDS, MAPS, LABELS, TOP1, TOP5)
    return evaluator.compute(threshold_index=threshold_index)


# Per-image IoUs, per tau:
# A, cuts 0 and 63: block (contour area: 2 full 2x2 windows = 2) beats the
#   pixel (area 0).  Block rect (1, 1, 3, 2) -> box (1, 1, 4, 3).  Against
#   GT (1, 1, 3, 2): inter = 3 * 2 = 6, areas 12 and 6 -> 6 / 12 = 0.5.
#   The pixel's box (4, 4, 5, 5) does not overlap the GT: IoU 0.
# A, cuts 127 and 191: only the pixel (127 is not > 127): IoU 0.
#   -> V1 = V2 = (.5, .5, 0, 0).
# B, every cut: outer contour rect (0, 0, 5, 5) -> box (0, 0, 5, 5):
#   inter with GT (1, 1, 4, 3) = 4 * 3 = 12, areas 36 and 12 -> 1/3.
#   Hole contour: hole bbox x 2-3, y 2 grown by 1 -> rect (1, 1, 4, 3) ->
#   box (1, 1, 5, 4): inter 12, areas 20 and 12 -> 12 / 20 = 0.6.
#   V1 takes the outer contour (area 16 vs 4): 1/3; V2 the best: 0.6.
# C = A's map and GT: (.5, .5, 0, 0).
def test_box_accuracy_curves_and_maxima():
    r = evaluate()
    pct = lambda n: n * 100. / 3  # noqa: E731  (n of 3 images, in %)
    np.testing.assert_array_equal(r["thresholds"], [0, .25, .5, .75])
    # V1 at 50: A and C at the two low taus.
    np.testing.assert_array_equal(r["box_acc_v1_curve@50"],
                                  [pct(2), pct(2), 0, 0])
    # V1 at 30: B's 1/3 >= 0.3 counts at every tau.
    np.testing.assert_array_equal(r["box_acc_v1_curve@30"],
                                  [pct(3), pct(3), pct(1), pct(1)])
    np.testing.assert_array_equal(r["box_acc_v1_curve@70"], [0, 0, 0, 0])
    # V2 at 30 and 50: B's hole box (0.6) counts everywhere.
    for delta in (30, 50):
        np.testing.assert_array_equal(r[f"box_acc_v2_curve@{delta}"],
                                      [pct(3), pct(3), pct(1), pct(1)])
    np.testing.assert_array_equal(r["box_acc_v2_curve@70"], [0, 0, 0, 0])
    assert r["max_box_acc"] == pct(2)
    assert r["max_box_acc_v2@30"] == 100.0
    assert r["max_box_acc_v2@50"] == 100.0
    assert r["max_box_acc_v2@70"] == 0.0
    assert r["max_box_acc_v2"] == pytest.approx((100 + 100 + 0) / 3, rel=1e-15)
    assert r["num_images"] == 3


def test_localisation_and_classification_accuracies():
    r = evaluate(threshold_index=2)
    pct = lambda n: n * 100. / 3  # noqa: E731
    # Top-1 / Top-5 classification: a only / a and b.
    assert r["top1_cls"] == pct(1)
    assert r["top5_cls"] == pct(2)
    # GT-known Loc = V1 box accuracy at IoU 50: a and c at taus 0, .25.
    np.testing.assert_array_equal(r["gt_known_loc_curve"],
                                  [pct(2), pct(2), 0, 0])
    # Top-1 Loc also needs the right class: only a; c localises but is
    # misclassified, b is neither.
    np.testing.assert_array_equal(r["top1_loc_curve"], [pct(1), pct(1), 0, 0])
    # Own best tau: first maximum, tau = 0.
    assert r["best_tau_index_gt_known"] == 0 and r["best_tau_gt_known"] == 0.0
    assert r["gt_known_loc@best_tau"] == pct(2)
    assert r["best_tau_index_top1_loc"] == 0
    assert r["top1_loc@best_tau"] == pct(1)
    # At the val tau index 2 (tau = .5) nothing is localised.
    assert r["val_tau_index"] == 2 and r["val_tau"] == 0.5
    assert r["gt_known_loc@val_tau"] == 0.0
    assert r["top1_loc@val_tau"] == 0.0
    assert best_threshold_index(r) == 0


def test_oracle_agrees_on_golden_case():
    fast = evaluate(threshold_index=1)
    slow = evaluate(LiteralEvaluator, threshold_index=1)
    assert fast.keys() == slow.keys()
    for key in fast:
        np.testing.assert_array_equal(fast[key], slow[key])


def test_threshold_to_cut_boundary_at_default_interval():
    """Image A alone, 1000 taus: the block (q = 127) stays in the mask while
    int(tau * 255) <= 126.  tau = .498 -> 126.99 -> 126 (kept);
    tau = .499 -> 127.245 -> 127 (dropped).  So indices 0..498 are right."""
    evaluator = WSOLEvaluator({"a": GT["a"]}, {"a": SIZES["a"]},
                              input_size=(H, W))
    evaluator.accumulate(["a"], image_a()[None], np.array([0]))
    curve = evaluator.compute()["box_acc_v1_curve@50"]
    expected = np.zeros(1000)
    expected[:499] = 100.0
    np.testing.assert_array_equal(curve, expected)


def test_empty_map_scores_the_zero_box():
    """No contour -> the reference scores box (0, 0, 0, 0).  Against GT
    (0, 0, 0, 1): inter = 1 * 1 = 1, areas 1 and 2 -> 1 / 2 = 0.5, which
    counts at IoU 50 even though nothing was predicted."""
    evaluator = WSOLEvaluator({"z": np.array([[0, 0, 0, 1]])}, {"z": (6, 6)},
                              input_size=(H, W), cam_curve_interval=0.25)
    evaluator.accumulate(["z"], np.zeros((1, H, W), np.float32),
                         np.array([0]))
    r = evaluator.compute()
    np.testing.assert_array_equal(r["box_acc_v1_curve@50"], [100.0] * 4)
    np.testing.assert_array_equal(r["box_acc_v2_curve@70"], [0.0] * 4)


def test_pxap_by_hand():
    """One 2x3 image, taus (0, .25, .5, .75): bins [0,.25) [.25,.5) [.5,.75)
    [.75,1) [1,2) [2,3].

    scores  1.0 0.8 0.3     mask  1 1 0
            0.6 0.1 0.0           0 1 255 (ignored)
    fg scores 1.0, 0.8, 0.1 -> fg hist (1, 0, 0, 1, 1, 0)
    bg scores 0.3, 0.6      -> bg hist (0, 1, 1, 0, 0, 0)
    From the top bin down: tp = (0, 1, 2, 2, 2, 3), fp = (0, 0, 0, 1, 2, 2),
    fn = 3 - tp.  precision = (nan, 1, 1, 2/3, 1/2, 3/5),
    recall = (0, 1/3, 2/3, 2/3, 2/3, 1).
    PxAP = sum precision[i] * (recall[i] - recall[i-1]), i >= 1
         = 1 * 1/3 + 1 * 1/3 + 0 + 0 + 3/5 * 1/3 = 13/15 = 86.67 %.
    """
    scores = np.array([[1.0, 0.8, 0.3], [0.6, 0.1, 0.0]], np.float32)
    mask = np.array([[1, 1, 0], [0, 1, 255]], np.uint8)
    evaluator = WSOLEvaluator({"m": np.array([[0, 0, 1, 1]])}, {"m": (3, 2)},
                              input_size=(2, 3), cam_curve_interval=0.25,
                              mask_loader=lambda image_id: mask)
    evaluator.accumulate(["m"], scores[None], np.array([0]))
    r = evaluator.compute()
    assert r["pxap"] == pytest.approx(100 * 13 / 15, rel=1e-12)
    np.testing.assert_allclose(r["pxap_precision"],
                               [np.nan, 1, 1, 2 / 3, 1 / 2, 3 / 5], rtol=1e-12)
    np.testing.assert_allclose(r["pxap_recall"],
                               [0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1], rtol=1e-12)
