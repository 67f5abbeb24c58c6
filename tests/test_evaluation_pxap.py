"""PxAP building blocks against the reference's np.histogram formulation."""

from __future__ import annotations

import numpy as np
import pytest

from wsolax.evaluation.protocol import make_thresholds
from wsolax.evaluation.pxap import (histogram_edges, pxap_from_histograms,
                                    score_histograms)


def reference_histograms(scores, mask, edges):
    true_hist, _ = np.histogram(scores[mask == 1], bins=edges)
    false_hist, _ = np.histogram(scores[mask == 0], bins=edges)
    return true_hist.astype(np.float64), false_hist.astype(np.float64)


@pytest.mark.parametrize("interval", [0.001, 0.01, 0.25])
def test_histograms_equal_np_histogram(interval):
    rng = np.random.default_rng(0)
    thresholds = make_thresholds(interval)
    edges = histogram_edges(thresholds)
    for _ in range(20):
        scores = rng.random((30, 40), dtype=np.float32)
        # Values exactly on (float32-rounded) bin edges, 0 and 1.
        on_edges = rng.choice(thresholds, 200).astype(np.float32)
        scores.ravel()[:200] = on_edges
        scores.ravel()[200:210] = 1.0
        scores.ravel()[210:220] = 0.0
        mask = rng.choice(np.array([0, 1, 255], np.uint8), scores.shape)
        ours = score_histograms(scores, mask, edges)
        ref = reference_histograms(scores, mask, edges)
        np.testing.assert_array_equal(ours[0], ref[0])
        np.testing.assert_array_equal(ours[1], ref[1])


def test_pxap_matches_reference_formula():
    rng = np.random.default_rng(1)
    edges = histogram_edges(make_thresholds())
    true_hist = np.zeros(len(edges) - 1)
    false_hist = np.zeros(len(edges) - 1)
    for _ in range(5):
        scores = rng.random((20, 20), dtype=np.float32) ** 2
        mask = (rng.random((20, 20)) < scores).astype(np.uint8)
        t, f = reference_histograms(scores, mask, edges)
        true_hist += t
        false_hist += f
    pxap, precision, recall = pxap_from_histograms(true_hist, false_hist)
    # Reference computation, verbatim order of operations.
    tp = true_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    fp = false_hist[::-1].cumsum()
    nz = (tp + fp) != 0
    with np.errstate(invalid="ignore"):
        ref_precision = tp / (tp + fp)
    ref_recall = tp / (tp + fn)
    auc = (ref_precision[1:] * np.diff(ref_recall))[nz[1:]].sum()
    auc *= 100
    assert pxap == auc
    np.testing.assert_array_equal(precision, ref_precision)
    np.testing.assert_array_equal(recall, ref_recall)


def test_perfect_and_degenerate_cases():
    edges = histogram_edges(make_thresholds(0.1))
    scores = np.array([[1.0, 0.0]], np.float32)
    # Foreground scored 1, background 0: precision 1 at full recall.
    t, f = score_histograms(scores, np.array([[1, 0]], np.uint8), edges)
    assert pxap_from_histograms(t, f)[0] == 100.0
    # No foreground pixel at all.
    t, f = score_histograms(scores, np.array([[0, 0]], np.uint8), edges)
    with pytest.raises(RuntimeError, match="no positive ground-truth"):
        pxap_from_histograms(t, f)
    # Every pixel ignored: nothing scored.
    t, f = score_histograms(scores, np.array([[255, 255]], np.uint8), edges)
    with pytest.raises(RuntimeError):
        pxap_from_histograms(t, f)
