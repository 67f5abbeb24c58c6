"""Every invalid input is rejected with a clear error, before any state
changes."""

from __future__ import annotations

import numpy as np
import pytest

from wsolax.evaluation import EvaluationInputError, WSOLEvaluator

INPUT = (8, 10)
GT = {"a": np.array([[1, 1, 5, 5]]), "b": np.array([[0, 0, 9, 7]])}
SIZES = {"a": (20, 16), "b": (10, 8)}


def good_maps(n=1):
    return np.random.default_rng(0).random((n, *INPUT)).astype(np.float32)


def make(**kwargs):
    return WSOLEvaluator(GT, SIZES, input_size=INPUT, cam_curve_interval=0.1,
                         **kwargs)


@pytest.mark.parametrize("bad, match", [
    (good_maps() + 1.5, r"\[0, 1\]"),
    (good_maps() - 0.5, r"\[0, 1\]"),
    (np.where(good_maps() > 0.5, np.nan, good_maps()), "NaN"),
    (good_maps().astype(np.uint8), "floating"),
    ((good_maps() * 255).astype(np.int32), "floating"),
    (good_maps() > 0.5, "floating"),
    (np.zeros((1, 10, 8), np.float32), "shape"),
    (np.zeros((1, 8, 10, 1), np.float32), "shape"),
    (np.zeros((8, 10), np.float32), "shape"),
    (np.zeros((2, 8, 10), np.float32), "shape"),  # batch of 1 id
])
def test_bad_scoremaps(bad, match):
    with pytest.raises(EvaluationInputError, match=match):
        make().accumulate(["a"], bad, np.array([0]))


def test_unknown_image_id():
    with pytest.raises(EvaluationInputError, match="no GT box"):
        make().accumulate(["zzz"], good_maps(), np.array([0]))


def test_image_accumulated_twice():
    evaluator = make()
    evaluator.accumulate(["a"], good_maps(), np.array([0]))
    with pytest.raises(EvaluationInputError, match="twice"):
        evaluator.accumulate(["a"], good_maps(), np.array([0]))
    with pytest.raises(EvaluationInputError, match="twice"):
        make().accumulate(["b", "b"], good_maps(2), np.array([0, 0]))


def test_pxap_without_mask_loader():
    with pytest.raises(EvaluationInputError, match="mask_loader"):
        make(compute_pxap=True)


@pytest.mark.parametrize("mask, match", [
    (None, "None"),
    (np.zeros((10, 8), np.uint8), "input size"),
    (np.full(INPUT, 7, np.uint8), "255"),
])
def test_bad_masks(mask, match):
    evaluator = make(mask_loader=lambda image_id: mask)
    with pytest.raises(EvaluationInputError, match=match):
        evaluator.accumulate(["a"], good_maps(), np.array([0]))


@pytest.mark.parametrize("labels, top1, top5, match", [
    (np.array([5]), None, None, r"\[0, 5\)"),
    (np.array([-1]), None, None, r"\[0, 5\)"),
    (np.array([0]), np.array([9]), np.zeros((1, 5), int), "top1"),
    (np.array([0]), np.array([0]), np.full((1, 5), 5), "top5"),
    (np.array([0]), np.array([0]), np.zeros((1, 6), int), "shape"),
    (np.array([0]), np.array([0]), np.zeros((1, 0), int), "shape"),
    (np.array([0]), np.array([0]), np.zeros(1, int), "shape"),
    (np.array([0]), np.array([0]), None, "together"),
    (np.array([0.5]), None, None, "integer"),
    (np.array([0, 1]), None, None, "shape"),
])
def test_bad_class_ids(labels, top1, top5, match):
    with pytest.raises(EvaluationInputError, match=match):
        make(num_classes=5).accumulate(["a"], good_maps(), labels, top1, top5)


def test_predictions_in_some_batches_only():
    evaluator = make()
    evaluator.accumulate(["a"], good_maps(), np.array([0]), np.array([0]),
                         np.zeros((1, 5), int))
    with pytest.raises(EvaluationInputError, match="Some batches"):
        evaluator.accumulate(["b"], good_maps(), np.array([0]))


@pytest.mark.parametrize("gt, sizes, match", [
    ({"a": np.zeros((0, 4))}, {"a": (4, 4)}, "k >= 1"),
    ({"a": np.zeros((1, 3))}, {"a": (4, 4)}, r"\(k, 4\)"),
    ({"a": np.array([[0, 0, np.nan, 1]])}, {"a": (4, 4)}, "NaN"),
    ({"a": np.zeros((1, 4))}, {}, "image_sizes"),
    ({"a": np.zeros((1, 4))}, {"a": (0, 4)}, "positive"),
])
def test_bad_annotations(gt, sizes, match):
    with pytest.raises(EvaluationInputError, match=match):
        WSOLEvaluator(gt, sizes, input_size=INPUT)


def test_bad_threshold_index_and_early_compute():
    evaluator = make()
    with pytest.raises(RuntimeError, match="before any accumulate"):
        evaluator.compute()
    evaluator.accumulate(["a"], good_maps(), np.array([0]))
    with pytest.raises(EvaluationInputError, match="threshold_index"):
        evaluator.compute(threshold_index=10)  # 10 taus: 0..9


def test_failed_batch_leaves_state_unchanged():
    evaluator = make()
    evaluator.accumulate(["a"], good_maps(), np.array([0]))
    before = evaluator.compute()
    with pytest.raises(EvaluationInputError):
        evaluator.accumulate(["b"], good_maps() + 2, np.array([0]))
    assert evaluator.num_images == 1
    after = evaluator.compute()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    evaluator.accumulate(["b"], good_maps(), np.array([0]))  # b still new
    assert evaluator.num_images == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(cam_curve_interval=0), "cam_curve_interval"),
    (dict(cam_curve_interval=1.5), "cam_curve_interval"),
    (dict(iou_thresholds=()), "iou_thresholds"),
])
def test_bad_protocol_settings(kwargs, match):
    with pytest.raises(EvaluationInputError, match=match):
        WSOLEvaluator(GT, SIZES, input_size=INPUT, **kwargs)


def test_box_path_rejects_thresholds_outside_unit_interval():
    from wsolax.evaluation import box_iou_curves

    q = np.ones((4, 4), np.uint8)
    for bad in ([0.5, 1.0], [-0.1, 0.5], []):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            box_iou_curves(q, np.array([[0, 0, 1, 1]]), np.array(bad))


def test_top5_with_fewer_classes():
    """A 3-class data set only has a top-3: accepted as the top-5 row."""
    evaluator = make(num_classes=3)
    evaluator.accumulate(["a"], good_maps(), np.array([2]), np.array([0]),
                         np.array([[0, 1, 2]]))
    result = evaluator.compute()
    assert result["top1_cls"] == 0.0 and result["top5_cls"] == 100.0
