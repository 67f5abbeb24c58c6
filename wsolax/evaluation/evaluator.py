"""Accumulate-then-compute WSOL evaluator (CVPR'20 protocol, exact).

Usage (eval script or training loop):

    evaluator = WSOLEvaluator(gt_boxes, image_sizes, input_size=(224, 224))
    for batch in loader:
        evaluator.accumulate(ids, scoremaps, labels, top1, top5)
    val = evaluator.compute()
    tau = best_threshold_index(val)           # chosen on the val split
    ...                                       # fresh evaluator on test
    test = test_evaluator.compute(threshold_index=tau)

Per image only integer counts per threshold are kept, so memory does not
grow with the data set (the PxAP histograms are fixed-size too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from . import checks, protocol
from .parallel import BoxCurveRunner
from .pxap import histogram_edges, pxap_from_histograms, score_histograms

V1_DELTA = protocol.V1_IOU_THRESHOLD


def best_threshold_index(result: Mapping[str, object]) -> int:
    """Index of the CAM threshold maximising MaxBoxAcc's curve (V1, IoU 50).

    This is how the protocol picks tau on the val split; ties go to the
    smallest threshold (first index).
    """
    return int(np.argmax(result[f"box_acc_v1_curve@{V1_DELTA}"]))


class WSOLEvaluator:
    """MaxBoxAcc, MaxBoxAccV2, PxAP, Top-1/GT-known Loc and Top-1/5 Cls.

    Args:
      gt_boxes: image id -> (k, 4) GT boxes (x0, y0, x1, y1) in original
        image pixels.
      image_sizes: image id -> original (width, height).
      input_size: (H, W) of the score maps.
      cam_curve_interval: spacing of the CAM thresholds in [0, 1).
      iou_thresholds: IoU thresholds (percent) averaged by MaxBoxAccV2.
      mask_loader: image id -> (H, W) uint8 GT mask at input size (1 fg,
        0 bg, 255 ignore).  Given -> PxAP is computed.
      compute_pxap: force PxAP on (error if no mask_loader) or off; default
        follows whether mask_loader is given.
      num_classes: if given, class ids are range-checked.
      workers: processes for the box computation (1 = in-process).
    """

    def __init__(self, gt_boxes: Mapping[str, np.ndarray],
                 image_sizes: Mapping[str, Sequence[int]],
                 input_size: tuple[int, int] = (224, 224),
                 cam_curve_interval: float = 0.001,
                 iou_thresholds: Sequence[int] = protocol.DEFAULT_IOU_THRESHOLDS,
                 mask_loader: Callable[[str], np.ndarray | None] | None = None,
                 compute_pxap: bool | None = None,
                 num_classes: int | None = None,
                 workers: int = 1):
        checks.check_annotations(gt_boxes, image_sizes)
        if compute_pxap is None:
            compute_pxap = mask_loader is not None
        if compute_pxap and mask_loader is None:
            raise checks.EvaluationInputError(
                "PxAP was requested but no mask_loader was given.")
        if not iou_thresholds:
            raise checks.EvaluationInputError("iou_thresholds is empty.")
        if not 0 < cam_curve_interval <= 1:
            raise checks.EvaluationInputError(
                f"cam_curve_interval must lie in (0, 1], got "
                f"{cam_curve_interval}.")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.thresholds = protocol.make_thresholds(cam_curve_interval)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)
        # V1 curves are kept at every requested delta plus 50, which defines
        # MaxBoxAcc and the localisation accuracies.
        self.v1_deltas = tuple(sorted(set(self.iou_thresholds) | {V1_DELTA}))
        self.num_classes = num_classes
        self.mask_loader = mask_loader if compute_pxap else None
        self._gt_original = gt_boxes
        self._image_sizes = image_sizes
        self._gt_input: dict[str, np.ndarray] = {}
        self._edges = histogram_edges(self.thresholds)
        self._runner = BoxCurveRunner(workers)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything accumulated (e.g. before the next epoch's eval)."""
        num_t = len(self.thresholds)
        self._seen: set[str] = set()
        self._num_images = 0
        self._v1_correct = {d: np.zeros(num_t, np.int64) for d in self.v1_deltas}
        self._v2_correct = {d: np.zeros(num_t, np.int64)
                            for d in self.iou_thresholds}
        self._top1_loc = np.zeros(num_t, np.int64)
        self._has_predictions: bool | None = None
        self._top1_correct = 0
        self._top5_correct = 0
        self._true_hist = np.zeros(len(self._edges) - 1)
        self._false_hist = np.zeros(len(self._edges) - 1)
        self._num_cuts = 0
        self._num_fallback = 0

    def state(self) -> dict:
        """Everything accumulated, as plain JSON-able values (exact: integer counts, and
        histograms of integer-valued float64 pixel counts), so that evaluators that scored
        disjoint parts of a split (one per process) can be merged into one."""
        return {"seen": sorted(self._seen), "num_images": self._num_images,
                "v1": {str(d): c.tolist() for d, c in self._v1_correct.items()},
                "v2": {str(d): c.tolist() for d, c in self._v2_correct.items()},
                "top1_loc": self._top1_loc.tolist(), "has_predictions": self._has_predictions,
                "top1": self._top1_correct, "top5": self._top5_correct,
                "true_hist": self._true_hist.tolist(), "false_hist": self._false_hist.tolist(),
                "num_cuts": self._num_cuts, "num_fallback": self._num_fallback}

    def merge(self, state: Mapping) -> None:
        """Add another evaluator's `state()` (same settings, other images) to this one."""
        overlap = self._seen.intersection(state["seen"])
        if overlap:
            raise checks.EvaluationInputError(
                f"cannot merge: {len(overlap)} image(s) were scored by both evaluators, "
                f"e.g. {sorted(overlap)[0]!r}")
        if {str(d) for d in self.v1_deltas} != set(state["v1"]) or \
                {str(d) for d in self.iou_thresholds} != set(state["v2"]) or \
                len(state["top1_loc"]) != len(self.thresholds):
            raise checks.EvaluationInputError("cannot merge evaluators with other settings")
        other = state["has_predictions"]
        if None not in (other, self._has_predictions) and other != self._has_predictions:
            raise checks.EvaluationInputError(
                "cannot merge: one evaluator had top1/top5 predictions and the other not")
        for d in self.v1_deltas:
            self._v1_correct[d] += np.asarray(state["v1"][str(d)], np.int64)
        for d in self.iou_thresholds:
            self._v2_correct[d] += np.asarray(state["v2"][str(d)], np.int64)
        self._top1_loc += np.asarray(state["top1_loc"], np.int64)
        if self._has_predictions is None:
            self._has_predictions = other
        self._top1_correct += int(state["top1"])
        self._top5_correct += int(state["top5"])
        self._true_hist += np.asarray(state["true_hist"], np.float64)
        self._false_hist += np.asarray(state["false_hist"], np.float64)
        self._num_cuts += int(state["num_cuts"])
        self._num_fallback += int(state["num_fallback"])
        self._seen.update(state["seen"])
        self._num_images += int(state["num_images"])

    def close(self) -> None:
        """Stop worker processes, if any."""
        self._runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def num_images(self) -> int:
        return self._num_images

    @property
    def fallback_stats(self) -> dict[str, float]:
        """How often the fast box path deferred to literal cv2 (per cut)."""
        rate = self._num_fallback / self._num_cuts if self._num_cuts else 0.0
        return {"num_cuts": self._num_cuts,
                "num_fallback_cuts": self._num_fallback,
                "fallback_rate": rate}

    def _gt_at_input_size(self, image_id: str) -> np.ndarray:
        if image_id not in self._gt_input:
            self._gt_input[image_id] = protocol.rescale_boxes(
                self._gt_original[image_id], self._image_sizes[image_id],
                self.input_size)
        return self._gt_input[image_id]

    # ------------------------------------------------------------- accumulate
    def accumulate(self, image_ids: Sequence[str], scoremaps, labels,
                   top1=None, top5=None) -> None:
        """Add a batch.

        Args:
          image_ids: (B,) ids present in gt_boxes, each accumulated once.
          scoremaps: (B, H, W) floating score maps in [0, 1] (the CAM of the
            GT class, resized and min-max normalised).
          labels: (B,) GT class ids.
          top1: (B,) predicted class ids, or None.
          top5: (B, 5) top-5 predicted class ids, or None (given with top1);
            (B, k < 5) is accepted for data sets with k < 5 classes.
        """
        ids = checks.check_image_ids(image_ids, self._gt_original, self._seen)
        batch = len(ids)
        maps = checks.check_scoremaps(scoremaps, batch, self.input_size)
        labels = checks.check_class_ids("labels", labels, (batch,),
                                        self.num_classes)
        has_predictions = top1 is not None
        if (top5 is not None) != has_predictions:
            raise checks.EvaluationInputError(
                "Give top1 and top5 together, or neither.")
        if self._has_predictions is not None and \
                has_predictions != self._has_predictions:
            raise checks.EvaluationInputError(
                "Some batches had top1/top5 predictions and others not.")
        if has_predictions:
            top1 = checks.check_class_ids("top1", top1, (batch,),
                                          self.num_classes)
            # Fewer than 5 columns only makes sense with fewer than 5
            # classes; more would silently turn Top-5 into Top-k.
            top5_cols = np.shape(top5)[1] if np.ndim(top5) == 2 else 5
            top5 = checks.check_class_ids("top5", top5,
                                          (batch, min(max(top5_cols, 1), 5)),
                                          self.num_classes)
        masks = None
        if self.mask_loader is not None:
            masks = [checks.check_mask(self.mask_loader(i), i, self.input_size)
                     for i in ids]
        if batch == 0:
            return

        # All inputs are valid: from here on the state changes.
        qmaps = protocol.quantize_scoremap(maps)
        curves = self._runner(qmaps, [self._gt_at_input_size(i) for i in ids],
                              self.thresholds)
        v1 = np.stack([c.v1 for c in curves])
        v2 = np.stack([c.v2 for c in curves])
        for d in self.v1_deltas:
            self._v1_correct[d] += (v1 >= d / 100).sum(0)
        for d in self.iou_thresholds:
            self._v2_correct[d] += (v2 >= d / 100).sum(0)
        if has_predictions:
            cls_ok = top1 == labels
            self._top1_correct += int(cls_ok.sum())
            self._top5_correct += int((top5 == labels[:, None]).any(1).sum())
            self._top1_loc += ((v1 >= V1_DELTA / 100) & cls_ok[:, None]).sum(0)
            self._has_predictions = True
        elif self._has_predictions is None:
            self._has_predictions = False
        if masks is not None:
            for scoremap, mask in zip(maps, masks):
                true_hist, false_hist = score_histograms(scoremap, mask,
                                                         self._edges)
                self._true_hist += true_hist
                self._false_hist += false_hist
        self._num_cuts += sum(c.num_cuts for c in curves)
        self._num_fallback += sum(c.num_fallback for c in curves)
        self._seen.update(ids)
        self._num_images += batch

    # ---------------------------------------------------------------- compute
    def compute(self, threshold_index: int | None = None) -> dict:
        """All metrics (percent) and their per-threshold curves.

        Args:
          threshold_index: index into `thresholds` of the tau chosen on the
            val split (`best_threshold_index(val_result)`); adds the
            "@val_tau" localisation accuracies.
        """
        if self._num_images == 0:
            raise RuntimeError("compute() called before any accumulate().")
        if threshold_index is not None and not (
                0 <= threshold_index < len(self.thresholds)):
            raise checks.EvaluationInputError(
                f"threshold_index must lie in [0, {len(self.thresholds)}), "
                f"got {threshold_index}.")
        cnt = float(self._num_images)
        out: dict = {"thresholds": self.thresholds.copy(),
                     "num_images": self._num_images}
        for d in self.v1_deltas:
            out[f"box_acc_v1_curve@{d}"] = self._v1_correct[d] * 100. / cnt
        for d in self.iou_thresholds:
            out[f"box_acc_v2_curve@{d}"] = self._v2_correct[d] * 100. / cnt
        out["max_box_acc"] = float(out[f"box_acc_v1_curve@{V1_DELTA}"].max())
        per_delta = [out[f"box_acc_v2_curve@{d}"].max()
                     for d in self.iou_thresholds]
        for d, acc in zip(self.iou_thresholds, per_delta):
            out[f"max_box_acc_v2@{d}"] = float(acc)
        out["max_box_acc_v2"] = float(np.mean(per_delta))

        # GT-known Loc is the V1 box accuracy at IoU 50 (GT-class CAM).
        curve = out[f"box_acc_v1_curve@{V1_DELTA}"]
        out["gt_known_loc_curve"] = curve
        self._add_at_taus(out, "gt_known_loc", "gt_known", curve,
                          threshold_index)
        if self._has_predictions:
            out["top1_cls"] = self._top1_correct * 100. / cnt
            out["top5_cls"] = self._top5_correct * 100. / cnt
            curve = self._top1_loc * 100. / cnt
            out["top1_loc_curve"] = curve
            self._add_at_taus(out, "top1_loc", "top1_loc", curve,
                              threshold_index)
        if self.mask_loader is not None:
            pxap, precision, recall = pxap_from_histograms(self._true_hist,
                                                           self._false_hist)
            out["pxap"] = pxap
            out["pxap_precision"] = precision
            out["pxap_recall"] = recall
        return out

    def _add_at_taus(self, out: dict, metric: str, tag: str,
                     curve: np.ndarray, threshold_index: int | None) -> None:
        """`metric` at its own best tau on this split and at the val tau."""
        best = int(np.argmax(curve))
        out[f"best_tau_index_{tag}"] = best
        out[f"best_tau_{tag}"] = float(self.thresholds[best])
        out[f"{metric}@best_tau"] = float(curve[best])
        if threshold_index is not None:
            out["val_tau_index"] = int(threshold_index)
            out["val_tau"] = float(self.thresholds[threshold_index])
            out[f"{metric}@val_tau"] = float(curve[threshold_index])
