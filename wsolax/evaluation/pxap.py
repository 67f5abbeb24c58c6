"""Pixel average precision (PxAP) of the CVPR'20 protocol.

Scores of GT-foreground and GT-background pixels are histogrammed over the
CAM thresholds; the precision-recall curve and its area follow from
cumulative sums of the two histograms, read from the highest threshold
down.
"""

from __future__ import annotations

import numpy as np

# Mask values: 1 = foreground, 0 = background, 255 = ignored.
FOREGROUND, BACKGROUND, IGNORE = 1, 0, 255


def histogram_edges(thresholds: np.ndarray) -> np.ndarray:
    """Bin edges [t0, t1), ..., [t_last, 1), [1, 2), [2, 3]; scores equal to
    1.0 land in the [1, 2) bin."""
    return np.append(thresholds, [1.0, 2.0, 3.0])


def score_histograms(scoremap: np.ndarray, mask: np.ndarray,
                     edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of foreground and background scores of one image.

    Same counts as `np.histogram(scores, bins=edges)` (half-open bins, the
    last one closed, comparisons in float64), without sorting the scores:
    one binary search per pixel and a bincount.
    """
    scores = np.asarray(scoremap).ravel()
    labels = np.asarray(mask).ravel()
    num_bins = len(edges) - 1
    index = np.searchsorted(edges, scores.astype(np.float64), side="right") - 1
    index[scores == edges[-1]] = num_bins - 1
    valid = (index >= 0) & (index < num_bins)
    true_hist = np.bincount(index[valid & (labels == FOREGROUND)],
                            minlength=num_bins)
    false_hist = np.bincount(index[valid & (labels == BACKGROUND)],
                             minlength=num_bins)
    return true_hist.astype(np.float64), false_hist.astype(np.float64)


def pxap_from_histograms(true_hist: np.ndarray, false_hist: np.ndarray):
    """PxAP (in %) and the PR curve from accumulated histograms.

    Thresholds are swept from high to low, so precision/recall are ordered
    by increasing recall; precision is NaN where nothing is predicted
    positive (those points are excluded from the area, as in the reference).

    Returns (pxap, precision, recall).
    """
    tp = true_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    fp = false_hist[::-1].cumsum()
    if ((tp + fn) <= 0).all():
        raise RuntimeError("PxAP: no positive ground-truth pixel in the "
                           "evaluated masks.")
    if ((tp + fp) <= 0).all():
        raise RuntimeError("PxAP: no positive prediction in the evaluated "
                           "masks (no pixel was scored).")
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    pxap = 100 * (precision[1:] * np.diff(recall))[nonzero[1:]].sum()
    return float(pxap), precision, recall
