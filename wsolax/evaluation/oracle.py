"""Literal, slow reimplementation of the CVPR'20 WSOL protocol.

This is the test oracle and benchmark baseline for the fast evaluator.  It
follows the reference benchmark step by step -- one `cv2.findContours` per
image and per threshold, `max(contours, key=cv2.contourArea)` for V1,
`np.histogram` for PxAP -- and deliberately shares no code with the fast
path (not even `protocol.py`), so that agreement between the two means
something.  Its `compute()` returns the same keys as `WSOLEvaluator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np


def resize_box(box, image_size, resize_size):
    """Reference GT rescaling; sizes are (width, height)."""
    x0, y0, x1, y1 = map(float, box)
    image_w, image_h = map(float, image_size)
    new_w, new_h = map(float, resize_size)
    return (int(x0 * new_w / image_w), int(y0 * new_h / image_h),
            int(x1 * new_w / image_w), int(y1 * new_h / image_h))


def multiple_iou(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """Reference IoU matrix with inclusive coordinates."""
    num_a, num_b = box_a.shape[0], box_b.shape[0]
    box_a = np.repeat(box_a[:, None, :], num_b, axis=1)
    box_b = np.repeat(box_b[None, :, :], num_a, axis=0)
    min_x = np.maximum(box_a[..., 0], box_b[..., 0])
    min_y = np.maximum(box_a[..., 1], box_b[..., 1])
    max_x = np.minimum(box_a[..., 2], box_b[..., 2])
    max_y = np.minimum(box_a[..., 3], box_b[..., 3])
    area_intersect = (np.maximum(0, max_x - min_x + 1)
                      * np.maximum(0, max_y - min_y + 1))
    area_a = (box_a[..., 2] - box_a[..., 0] + 1) * (box_a[..., 3] - box_a[..., 1] + 1)
    area_b = (box_b[..., 2] - box_b[..., 0] + 1) * (box_b[..., 3] - box_b[..., 1] + 1)
    denominator = area_a + area_b - area_intersect
    degenerate = np.where(denominator <= 0)
    denominator[degenerate] = 1
    area_intersect[degenerate] = 0
    return area_intersect / denominator


def boxes_at_threshold(scoremap_image: np.ndarray, threshold: float):
    """V1 box and all-contour (V2) boxes from ONE findContours call.

    `scoremap_image` is the (H, W, 1) uint8 image the reference builds.
    """
    height, width = scoremap_image.shape[:2]
    _, thr = cv2.threshold(src=scoremap_image,
                           thresh=int(threshold * np.max(scoremap_image)),
                           maxval=255, type=cv2.THRESH_BINARY)
    contours = cv2.findContours(image=thr, mode=cv2.RETR_TREE,
                                method=cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        empty = np.asarray([[0, 0, 0, 0]])
        return empty, empty

    def to_box(contour):
        x, y, w, h = cv2.boundingRect(contour)
        x0, y0, x1, y1 = x, y, x + w, y + h
        return [x0, y0, min(x1, width - 1), min(y1, height - 1)]

    v1 = np.asarray([to_box(max(contours, key=cv2.contourArea))])
    v2 = np.asarray([to_box(c) for c in contours])
    return v1, v2


def literal_box_ious(scoremap: np.ndarray, gt_boxes: np.ndarray,
                     thresholds: Sequence[float]):
    """Per-threshold best IoU of the V1 box and of all V2 boxes."""
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    v1_ious, v2_ious = [], []
    for threshold in thresholds:
        v1, v2 = boxes_at_threshold(scoremap_image, threshold)
        v1_ious.append(multiple_iou(v1, gt_boxes).max(1).max())
        v2_ious.append(multiple_iou(v2, gt_boxes).max(1).max())
    return np.asarray(v1_ious), np.asarray(v2_ious)


def literal_v1_ious(scoremap: np.ndarray, gt_boxes: np.ndarray,
                    thresholds: Sequence[float]) -> np.ndarray:
    """Per-threshold V1 IoU only: the cheapest literal loop (the reference's
    box evaluator with multi_contour_eval=False), kept to time a baseline."""
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    height, width = scoremap.shape
    ious = []
    for threshold in thresholds:
        _, thr = cv2.threshold(src=scoremap_image,
                               thresh=int(threshold * np.max(scoremap_image)),
                               maxval=255, type=cv2.THRESH_BINARY)
        contours = cv2.findContours(image=thr, mode=cv2.RETR_TREE,
                                    method=cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            box = np.asarray([[0, 0, 0, 0]])
        else:
            x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
            box = np.asarray([[x, y, min(x + w, width - 1),
                               min(y + h, height - 1)]])
        ious.append(multiple_iou(box, gt_boxes).max(1).max())
    return np.asarray(ious)


class LiteralEvaluator:
    """Same interface and result keys as `WSOLEvaluator`, computed literally.

    Input validation is minimal on purpose: this class exists to be compared
    with the fast path on valid inputs.
    """

    def __init__(self, gt_boxes: Mapping[str, np.ndarray],
                 image_sizes: Mapping[str, tuple[int, int]],
                 input_size: tuple[int, int] = (224, 224),
                 cam_curve_interval: float = 0.001,
                 iou_thresholds: Sequence[int] = (30, 50, 70),
                 mask_loader: Callable[[str], np.ndarray] | None = None):
        self.input_size = tuple(input_size)
        self.thresholds = list(np.arange(0, 1, cam_curve_interval))
        self.iou_thresholds = tuple(iou_thresholds)
        self.v1_deltas = tuple(sorted(set(self.iou_thresholds) | {50}))
        resize_size = (self.input_size[1], self.input_size[0])
        self.gt_boxes = {
            image_id: np.asarray([resize_box(b, image_sizes[image_id], resize_size)
                                  for b in np.asarray(boxes).reshape(-1, 4)])
            for image_id, boxes in gt_boxes.items()}
        self.mask_loader = mask_loader
        num_t = len(self.thresholds)
        self.num_correct_v1 = {d: np.zeros(num_t) for d in self.v1_deltas}
        self.num_correct_v2 = {d: np.zeros(num_t) for d in self.iou_thresholds}
        self.num_top1_loc = np.zeros(num_t)
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        self.true_hist = np.zeros(len(self.edges) - 1, dtype=np.float64)
        self.false_hist = np.zeros(len(self.edges) - 1, dtype=np.float64)
        self.top1_correct = 0
        self.top5_correct = 0
        self.has_predictions = None
        self.cnt = 0

    def accumulate(self, image_ids, scoremaps, labels, top1=None, top5=None):
        for b, image_id in enumerate(image_ids):
            scoremap = scoremaps[b]
            v1, v2 = literal_box_ious(scoremap, self.gt_boxes[image_id],
                                      self.thresholds)
            for d in self.v1_deltas:
                self.num_correct_v1[d][np.where(v1 >= d / 100)[0]] += 1
            for d in self.iou_thresholds:
                self.num_correct_v2[d][np.where(v2 >= d / 100)[0]] += 1
            if top1 is not None:
                self.has_predictions = True
                cls_ok = int(top1[b]) == int(labels[b])
                self.top1_correct += cls_ok
                self.top5_correct += int(labels[b]) in [int(t) for t in top5[b]]
                if cls_ok:
                    self.num_top1_loc[np.where(v1 >= 0.5)[0]] += 1
            if self.mask_loader is not None:
                gt_mask = self.mask_loader(image_id)
                true_hist, _ = np.histogram(scoremap[gt_mask == 1], bins=self.edges)
                self.true_hist += true_hist.astype(np.float64)
                false_hist, _ = np.histogram(scoremap[gt_mask == 0], bins=self.edges)
                self.false_hist += false_hist.astype(np.float64)
            self.cnt += 1

    def _pxap(self):
        num_gt_true = self.true_hist.sum()
        tp = self.true_hist[::-1].cumsum()
        fn = num_gt_true - tp
        fp = self.false_hist[::-1].cumsum()
        if ((tp + fn) <= 0).all():
            raise RuntimeError("No positive ground truth in the eval set.")
        if ((tp + fp) <= 0).all():
            raise RuntimeError("No positive prediction in the eval set.")
        non_zero = (tp + fp) != 0
        with np.errstate(invalid="ignore"):  # 0/0 where nothing is predicted
            precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        auc = (precision[1:] * np.diff(recall))[non_zero[1:]].sum() * 100
        return float(auc), precision, recall

    def compute(self, threshold_index: int | None = None) -> dict:
        cnt = float(self.cnt)
        out = {"thresholds": np.asarray(self.thresholds),
               "num_images": self.cnt}
        for d in self.v1_deltas:
            out[f"box_acc_v1_curve@{d}"] = self.num_correct_v1[d] * 100. / cnt
        for d in self.iou_thresholds:
            out[f"box_acc_v2_curve@{d}"] = self.num_correct_v2[d] * 100. / cnt
        out["max_box_acc"] = float(out["box_acc_v1_curve@50"].max())
        per_delta = [out[f"box_acc_v2_curve@{d}"].max() for d in self.iou_thresholds]
        for d, acc in zip(self.iou_thresholds, per_delta):
            out[f"max_box_acc_v2@{d}"] = float(acc)
        out["max_box_acc_v2"] = float(np.average(per_delta))

        gt_known = out["box_acc_v1_curve@50"]
        out["gt_known_loc_curve"] = gt_known
        best = int(np.argmax(gt_known))
        out["best_tau_index_gt_known"] = best
        out["best_tau_gt_known"] = float(self.thresholds[best])
        out["gt_known_loc@best_tau"] = float(gt_known[best])
        if threshold_index is not None:
            out["val_tau_index"] = int(threshold_index)
            out["val_tau"] = float(self.thresholds[threshold_index])
            out["gt_known_loc@val_tau"] = float(gt_known[threshold_index])
        if self.has_predictions:
            out["top1_cls"] = self.top1_correct * 100. / cnt
            out["top5_cls"] = self.top5_correct * 100. / cnt
            top1_loc = self.num_top1_loc * 100. / cnt
            out["top1_loc_curve"] = top1_loc
            best = int(np.argmax(top1_loc))
            out["best_tau_index_top1_loc"] = best
            out["best_tau_top1_loc"] = float(self.thresholds[best])
            out["top1_loc@best_tau"] = float(top1_loc[best])
            if threshold_index is not None:
                out["top1_loc@val_tau"] = float(top1_loc[threshold_index])
        if self.mask_loader is not None:
            pxap, precision, recall = self._pxap()
            out["pxap"] = pxap
            out["pxap_precision"] = precision
            out["pxap_recall"] = recall
        return out
