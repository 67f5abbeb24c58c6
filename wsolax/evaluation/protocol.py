"""Shared primitives of the CVPR'20 WSOL evaluation protocol (Choe et al.).

Every function here reproduces one rule of the reference benchmark
(`wsolevaluation`) bit for bit, so that the fast evaluator and any caller
agree with the published numbers.  The literal oracle (`oracle.py`) keeps
its own independent copies of these rules on purpose.
"""

from __future__ import annotations

import numpy as np

# Default IoU thresholds (in percent) of MaxBoxAccV2.
DEFAULT_IOU_THRESHOLDS = (30, 50, 70)
# MaxBoxAcc (V1), GT-known Loc and Top-1 Loc are defined at IoU >= 50%.
V1_IOU_THRESHOLD = 50


def make_thresholds(cam_curve_interval: float = 0.001) -> np.ndarray:
    """CAM thresholds tau in [0, 1), exactly the reference float64 values."""
    return np.arange(0, 1, cam_curve_interval)


def quantize_scoremap(scoremap: np.ndarray) -> np.ndarray:
    """The reference turns a [0, 1] map into uint8 by scaling and truncating."""
    return (scoremap * 255).astype(np.uint8)


def threshold_cuts(thresholds: np.ndarray, qmax: int) -> np.ndarray:
    """Integer cut per tau: the mask at tau is `q > cut`.

    The reference computes `int(tau * np.max(q))` with `np.max(q)` a uint8
    scalar; the product is float64 either way, so this vectorised form gives
    the same truncated integers (checked in the tests).
    """
    return (np.asarray(thresholds, np.float64) * float(qmax)).astype(np.int64)


def rescale_boxes(boxes: np.ndarray, image_size: tuple[int, int],
                  input_hw: tuple[int, int]) -> np.ndarray:
    """Map GT boxes (x0, y0, x1, y1) from the original image to the input size.

    `image_size` is (width, height) of the original image, `input_hw` is the
    (height, width) the score maps have.  The reference multiplies before it
    divides and truncates with `int`; the same float64 operations are used
    here, element by element, so the integers match.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = float(image_size[0]), float(image_size[1])
    new_h, new_w = float(input_hw[0]), float(input_hw[1])
    out = np.empty(boxes.shape, dtype=np.int64)
    out[:, 0] = np.trunc(boxes[:, 0] * new_w / width)
    out[:, 1] = np.trunc(boxes[:, 1] * new_h / height)
    out[:, 2] = np.trunc(boxes[:, 2] * new_w / width)
    out[:, 3] = np.trunc(boxes[:, 3] * new_h / height)
    return out


def box_ious(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """IoU matrix (n, k) with the reference's inclusive-coordinate formula.

    Integer arithmetic then one float64 division, as in the reference, so
    values compare exactly against the IoU thresholds.
    """
    a = np.asarray(boxes, dtype=np.int64).reshape(-1, 1, 4)
    b = np.asarray(gt_boxes, dtype=np.int64).reshape(1, -1, 4)
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2])
                         - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3])
                         - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denom = area_a + area_b - inter
    degenerate = denom <= 0
    inter = np.where(degenerate, 0, inter)
    denom = np.where(degenerate, 1, denom)
    return inter / denom


def clip_rect_to_box(x: int, y: int, w: int, h: int,
                     height: int, width: int) -> tuple[int, int, int, int]:
    """cv2.boundingRect (x, y, w, h) -> reference box (x0, y0, x1, y1).

    The reference clips only the far corner, to W-1 / H-1.
    """
    return x, y, min(x + w, width - 1), min(y + h, height - 1)
