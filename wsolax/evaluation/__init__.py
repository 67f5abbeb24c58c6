"""WSOL evaluation: the CVPR'20 protocol (MaxBoxAcc, MaxBoxAccV2, PxAP,
Top-1 / GT-known Loc), computed exactly and fast.

Score-map helpers (`resize_cams`, ...) need JAX and are imported lazily, so
that evaluation worker processes start without it.
"""

from .boxes import BoxIoUCurves, box_iou_curves
from .checks import EvaluationInputError
from .evaluator import WSOLEvaluator, best_threshold_index
from .protocol import make_thresholds, quantize_scoremap, rescale_boxes
from .pxap import pxap_from_histograms, score_histograms

_SCOREMAP_NAMES = ("cubic_resize_matrix", "resize_cams", "normalize_scoremaps",
                   "normalize_scoremap_np", "prepare_scoremap_cv2")

__all__ = [
    "BoxIoUCurves", "EvaluationInputError", "WSOLEvaluator",
    "best_threshold_index", "box_iou_curves", "make_thresholds",
    "pxap_from_histograms", "quantize_scoremap", "rescale_boxes",
    "score_histograms", *_SCOREMAP_NAMES,
]


def __getattr__(name):
    if name in _SCOREMAP_NAMES:
        from . import scoremap
        return getattr(scoremap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
