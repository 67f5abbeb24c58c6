"""WSOL evaluation: the CVPR'20 protocol (MaxBoxAcc, MaxBoxAccV2, PxAP, Top-1 / GT-known Loc),
computed exactly and fast, and the reference's score maps.

numpy, numba and OpenCV only -- no JAX (tested): the protocol can ship alone, and evaluator worker
processes start without JAX. CAM extraction and the evaluation run are in `wsolax.localization`.
"""

from .boxes import BoxIoUCurves, box_iou_curves
from .checks import EvaluationInputError
from .evaluator import WSOLEvaluator, best_threshold_index
from .protocol import make_thresholds, quantize_scoremap, rescale_boxes
from .pxap import pxap_from_histograms, score_histograms
from .reference_scoremap import normalize_scoremap_np, prepare_scoremap_cv2, reference_scoremaps

__all__ = [
    "BoxIoUCurves", "EvaluationInputError", "WSOLEvaluator", "best_threshold_index",
    "box_iou_curves", "make_thresholds", "normalize_scoremap_np", "prepare_scoremap_cv2",
    "pxap_from_histograms", "quantize_scoremap", "reference_scoremaps", "rescale_boxes",
    "score_histograms",
]
