import numpy as np

from wsolax.evaluation.evaluator import WSOLEvaluator
from wsolax.localization.run import format_table, mask_coverage_at


def test_mask_coverage_by_hand():
    # 4x4 map, thresholds {0, 0.5}. Object pixels score 0.9, 0.6, 0.2, 0.1; one background pixel
    # scores 0.7, the other 11 score 0. At tau = 0.5: object pixels >= 0.5 are 2 of 4 -> 50 %
    # coverage; pixels >= 0.5 are 0.9, 0.6, 0.7, of which 2 on the object -> 66.67 % precision.
    scoremap = np.zeros((4, 4), np.float32)
    mask = np.zeros((4, 4), np.uint8)
    for (y, x), s in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0.9, 0.6, 0.2, 0.1]):
        scoremap[y, x], mask[y, x] = s, 1
    scoremap[3, 3] = 0.7
    ev = WSOLEvaluator({"a": np.array([[0, 0, 1, 1]])}, {"a": (4, 4)}, input_size=(4, 4),
                       cam_curve_interval=0.5, mask_loader=lambda _: mask)
    ev.accumulate(["a"], scoremap[None], np.array([0]))
    result = ev.compute(threshold_index=1)
    cov = mask_coverage_at(result, 1)
    assert cov["mask_coverage@val_tau"] == 50.0
    assert abs(cov["mask_precision@val_tau"] - 200 / 3) < 1e-9
    # tau = 0: every object pixel counts (>= 0), 4 of 16 pixels are object.
    cov0 = mask_coverage_at(result, 0)
    assert cov0["mask_coverage@val_tau"] == 100.0 and cov0["mask_precision@val_tau"] == 25.0


def test_format_table_lists_splits_and_known_metrics():
    summary = {"splits": {"val": {"max_box_acc": 12.5, "top1_cls": 90.0},
                          "test": {"max_box_acc": 10.0}}}
    table = format_table(summary).splitlines()
    assert table[0].split() == ["metric", "val", "test"]
    assert table[2].split() == ["top1_cls", "90.00", "-"]
    assert table[3].split() == ["max_box_acc", "12.50", "10.00"]
