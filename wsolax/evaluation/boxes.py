"""Fast, exact per-threshold box IoUs for one score map.

For every CAM threshold tau the protocol thresholds the uint8 map, runs
`cv2.findContours` and scores the resulting boxes.  Only the integer cut
`int(tau * max q)` matters and there are at most 255 distinct cuts, so this
module summarises all cuts with union-find passes over the pixels
(`_hole_pass`, `_component_pass`) instead of 1000 contour extractions.  Cuts whose V1
contour depends on OpenCV's ordering of equal-area contours are recomputed
with cv2 itself, which keeps the result identical to the reference by
construction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from . import protocol
from ._component_pass import component_pass
from ._hole_pass import hole_pass
from ._kernels import Workspace, new_workspace, pixels_by_level

# One workspace per map shape and thread: allocating fresh buffers for every
# map costs more than the passes themselves on the target machine.
_LOCAL = threading.local()


def _workspace(shape: tuple[int, int]) -> Workspace:
    workspaces = _LOCAL.__dict__.setdefault("workspaces", {})
    if shape not in workspaces:
        workspaces[shape] = new_workspace(*shape)
    return workspaces[shape]


@numba.njit(cache=True)
def summarise_cuts(ws, needed, gt):
    """Per-cut summaries of the map in ws.q_pad (zero-framed uint8).

    Returns (hole_iou, outer_iou, v1_iou, fallback), each (256,) by cut; see
    `hole_pass` and `component_pass`.  Running the passes from one compiled
    call unboxes the workspace from Python once per map, not once per pass.
    """
    # One sort of q serves both directions (levels read up or down).
    pixels_by_level(ws.q_pad, ws.order, ws.coords, ws.start)
    hole_iou = hole_pass(ws, needed, gt)
    outer_iou, v1_iou, fallback = component_pass(ws, needed, gt)
    return hole_iou, outer_iou, v1_iou, fallback


@dataclass(frozen=True)
class BoxIoUCurves:
    """Per-threshold IoUs of one image.

    v1: IoU of the largest-contour box (MaxBoxAcc, GT-known/Top-1 Loc).
    v2: best IoU over all contour boxes (MaxBoxAccV2).
    num_cuts: distinct cuts evaluated; num_fallback: of those, cuts whose V1
      box came from the literal cv2 path.
    """

    v1: np.ndarray
    v2: np.ndarray
    num_cuts: int
    num_fallback: int


def _literal_v1_iou(q: np.ndarray, cut: int, gt_boxes: np.ndarray) -> float:
    """V1 IoU at one cut, computed exactly as the reference does."""
    mask = (q > cut).astype(np.uint8)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    contour = max(contours, key=cv2.contourArea)
    box = protocol.clip_rect_to_box(*cv2.boundingRect(contour), *q.shape)
    return float(protocol.box_ious(np.array([box]), gt_boxes).max())


def box_iou_curves(q: np.ndarray, gt_boxes: np.ndarray,
                   thresholds: np.ndarray) -> BoxIoUCurves:
    """V1 and V2 IoU for every threshold of one quantised score map.

    Args:
      q: (H, W) uint8 map, `protocol.quantize_scoremap` of the score map.
      gt_boxes: (k, 4) int GT boxes (x0, y0, x1, y1) at input size, k >= 1.
      thresholds: (T,) CAM thresholds in [0, 1).
    """
    thresholds = np.asarray(thresholds, np.float64)
    if thresholds.size == 0 or thresholds.min() < 0 or thresholds.max() >= 1:
        # tau >= 1 would empty the mask, which the passes do not model.
        raise ValueError("CAM thresholds must be non-empty and in [0, 1).")
    q = np.ascontiguousarray(q, dtype=np.uint8)
    gt = np.ascontiguousarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    qmax = int(q.max())
    cuts = protocol.threshold_cuts(thresholds, qmax)
    if qmax == 0:
        # Empty mask at every cut: the reference scores the box (0, 0, 0, 0).
        iou = float(protocol.box_ious(np.zeros((1, 4), np.int64), gt).max())
        curve = np.full(len(thresholds), iou)
        return BoxIoUCurves(curve, curve.copy(), 1, 0)

    needed = np.zeros(256, np.bool_)
    needed[cuts] = True
    ws = _workspace(q.shape)
    ws.q_pad[1:-1, 1:-1] = q
    hole_iou, outer_iou, v1_iou, fallback = summarise_cuts(ws, needed, gt)
    fallback_cuts = np.nonzero(fallback)[0]
    for cut in fallback_cuts:
        v1_iou[cut] = _literal_v1_iou(q, int(cut), gt)
    v2_iou = np.maximum(outer_iou, hole_iou)
    return BoxIoUCurves(v1=v1_iou[cuts], v2=v2_iou[cuts],
                        num_cuts=int(needed.sum()),
                        num_fallback=len(fallback_cuts))


def box_iou_curves_batch(qmaps: np.ndarray, gt_boxes: list[np.ndarray],
                         thresholds: np.ndarray) -> list[BoxIoUCurves]:
    """`box_iou_curves` over a batch; the unit of work sent to a worker."""
    return [box_iou_curves(q, gt, thresholds) for q, gt in zip(qmaps, gt_boxes)]
