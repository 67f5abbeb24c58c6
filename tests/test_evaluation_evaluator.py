"""WSOLEvaluator end to end: identical to the literal oracle, independent of
batching and workers, reusable across evaluations."""

from __future__ import annotations

import numpy as np
import pytest

from wsolax.evaluation import WSOLEvaluator, best_threshold_index
from wsolax.evaluation.oracle import LiteralEvaluator
from wsolax.evaluation.synthetic import cam_like_scoremaps, random_annotations

INPUT = (40, 56)  # non-square on purpose
NUM = 24
NUM_CLASSES = 6


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"img{i:03d}" for i in range(NUM)]
    gt_boxes, sizes = random_annotations(rng, ids, min_side=30, max_side=400)
    maps = cam_like_scoremaps(rng, NUM, INPUT, (7, 7))
    maps[3] = 0.0  # a constant map normalises to zeros
    masks = {i: rng.choice(np.array([0, 1, 255], np.uint8), INPUT,
                           p=[.5, .4, .1]) for i in ids}
    labels = rng.integers(0, NUM_CLASSES, NUM)
    top1 = np.where(rng.random(NUM) < .6, labels,
                    rng.integers(0, NUM_CLASSES, NUM))
    top5 = rng.integers(0, NUM_CLASSES, (NUM, 5))
    return ids, gt_boxes, sizes, maps, masks, labels, top1, top5


def run(cls, data, batch=8, threshold_index=None, **kwargs):
    ids, gt_boxes, sizes, maps, masks, labels, top1, top5 = data
    evaluator = cls(gt_boxes, sizes, input_size=INPUT, mask_loader=masks.get,
                    cam_curve_interval=0.004, **kwargs)
    for a in range(0, NUM, batch):
        s = slice(a, a + batch)
        evaluator.accumulate(ids[s], maps[s], labels[s], top1[s], top5[s])
    result = evaluator.compute(threshold_index=threshold_index)
    if hasattr(evaluator, "close"):
        evaluator.close()
    return result


def assert_same_result(fast, slow):
    assert fast.keys() == slow.keys()
    for key in fast:
        if isinstance(fast[key], np.ndarray):
            np.testing.assert_array_equal(fast[key], slow[key], err_msg=key)
        else:
            assert fast[key] == slow[key] and type(fast[key]) is type(
                slow[key]), key


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def oracle_result(data):
    return run(LiteralEvaluator, data, threshold_index=17)


def test_identical_to_literal_oracle(data, oracle_result):
    assert_same_result(run(WSOLEvaluator, data, threshold_index=17),
                       oracle_result)


def test_independent_of_batching_and_workers(data, oracle_result):
    assert_same_result(run(WSOLEvaluator, data, batch=5, threshold_index=17,
                           workers=2), oracle_result)
    assert_same_result(run(WSOLEvaluator, data, batch=NUM, threshold_index=17),
                       oracle_result)


def test_result_contents(data):
    result = run(WSOLEvaluator, data)
    assert result["num_images"] == NUM
    assert len(result["thresholds"]) == 250
    for key in ("box_acc_v1_curve@50", "box_acc_v2_curve@30",
                "gt_known_loc_curve", "top1_loc_curve"):
        assert result[key].shape == (250,)
    assert "gt_known_loc@val_tau" not in result
    assert 0 <= result["pxap"] <= 100
    assert result["max_box_acc_v2"] == pytest.approx(np.mean(
        [result[f"max_box_acc_v2@{d}"] for d in (30, 50, 70)]))
    # Top-1 Loc needs a correct box and class: never above GT-known Loc.
    assert (result["top1_loc_curve"] <= result["gt_known_loc_curve"]).all()


def test_val_tau_then_test_split(data):
    """Protocol: pick tau on val, report test accuracies at that index."""
    val = run(WSOLEvaluator, data)
    index = best_threshold_index(val)
    assert index == int(np.argmax(val["box_acc_v1_curve@50"]))
    test = run(WSOLEvaluator, make_data(seed=1), threshold_index=index)
    assert test["val_tau"] == test["thresholds"][index]
    assert test["gt_known_loc@val_tau"] == test["gt_known_loc_curve"][index]
    assert test["gt_known_loc@val_tau"] <= test["gt_known_loc@best_tau"]


def test_reset_and_reuse(data):
    ids, gt_boxes, sizes, maps, masks, labels, top1, top5 = data
    evaluator = WSOLEvaluator(gt_boxes, sizes, input_size=INPUT,
                              cam_curve_interval=0.004)
    evaluator.accumulate(ids[:4], maps[:4], labels[:4])
    first = evaluator.compute()
    evaluator.reset()
    assert evaluator.num_images == 0
    with pytest.raises(RuntimeError):
        evaluator.compute()
    evaluator.accumulate(ids[:4], maps[:4], labels[:4])  # same ids again: ok
    assert_same_result(evaluator.compute(), first)


def test_without_predictions_or_masks(data):
    ids, gt_boxes, sizes, maps, _, labels, _, _ = data
    evaluator = WSOLEvaluator(gt_boxes, sizes, input_size=INPUT,
                              cam_curve_interval=0.004)
    evaluator.accumulate(ids, maps, labels)
    result = evaluator.compute()
    for key in ("top1_cls", "top5_cls", "top1_loc_curve", "pxap"):
        assert key not in result
    assert "max_box_acc" in result


def test_accepts_jax_arrays_and_float64(data):
    import jax.numpy as jnp

    ids, gt_boxes, sizes, maps, _, labels, _, _ = data
    results = []
    for convert in (np.asarray, jnp.asarray,
                    lambda x: np.asarray(x, np.float64)):
        evaluator = WSOLEvaluator(gt_boxes, sizes, input_size=INPUT,
                                  cam_curve_interval=0.004)
        evaluator.accumulate(ids[:6], convert(maps[:6]),
                             jnp.asarray(labels[:6]))
        results.append(evaluator.compute())
    # Same float32 values from JAX: same result.  float64 maps are accepted
    # (and quantised in float64, like the reference would).
    assert_same_result(results[1], results[0])
    assert results[2]["num_images"] == 6


def test_fallback_stats_are_reported(data):
    ids, gt_boxes, sizes, maps, _, labels, _, _ = data
    evaluator = WSOLEvaluator(gt_boxes, sizes, input_size=INPUT)
    evaluator.accumulate(ids, maps, labels)
    stats = evaluator.fallback_stats
    assert stats["num_cuts"] > 0
    assert 0 <= stats["fallback_rate"] < 0.05


def test_merged_states_of_disjoint_parts_equal_the_literal_oracle(data):
    # Two evaluators, each on alternate images (as two processes would score their rows), their
    # states sent as JSON and merged: the same result as the slow oracle on all images.
    ids, gt_boxes, sizes, maps, masks, labels, top1, top5 = data
    import json

    parts = []
    for start in (0, 1):
        e = WSOLEvaluator(gt_boxes, sizes, input_size=INPUT, mask_loader=masks.get,
                          cam_curve_interval=0.004)
        idx = list(range(start, NUM, 2))
        e.accumulate([ids[i] for i in idx], maps[idx], labels[idx], top1[idx], top5[idx])
        parts.append(e)
    parts[0].merge(json.loads(json.dumps(parts[1].state())))
    assert_same_result(parts[0].compute(threshold_index=17),
                       run(LiteralEvaluator, data, threshold_index=17))
    with pytest.raises(Exception, match="scored by both"):
        parts[0].merge(parts[1].state())
