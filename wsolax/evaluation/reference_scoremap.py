"""Score maps exactly as the reference benchmark makes them (host side, numpy + OpenCV, no JAX).

The reference (`wsolevaluation`, inference.py) takes the CAMs out of the network (float32), casts
them to float64 (`t2n`: `.numpy().astype(np.float)`), resizes each with
`cv2.resize(..., INTER_CUBIC)` -- a float64 resize, because its input is float64 -- and min-max
normalises in float64 in place: NaN anywhere or min == max -> all zeros, else subtract the min and
divide by the max of the result.  The evaluator then quantises `(map * 255).astype(uint8)` and
histograms the float64 values for PxAP.

`reference_scoremaps` does the same operations on a batch and returns float64 maps identical to
the reference's, bit for bit, given the same CAM values.  It is the default of the evaluation
path (`eval.scoremap = "exact"`); the on-device float32 path (`wsolax/localization/device_scoremap.py`) is the opt-in
alternative.  JAX-free on purpose, so evaluator worker processes can import it.
"""

from __future__ import annotations

import cv2
import numpy as np


def normalize_scoremap_inplace(m: np.ndarray) -> np.ndarray:
    """The reference's min-max rule on one map, in place and in the map's dtype: NaN anywhere or
    min == max -> zeros, else subtract the min, then divide by the max of the result."""
    lo = m.min()  # NaN if any element is NaN: one pass instead of isnan().any()
    if np.isnan(lo) or lo == m.max():
        m[...] = 0
        return m
    m -= lo
    m /= m.max()
    return m


def reference_scoremaps(cams: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(B, h, w) network CAMs -> (B, H, W) float64 score maps, exactly as the reference.

    One cv2 call and one in-place normalisation per map, as the reference does it: each map stays
    in cache between the two (batching the resize as channels of one image, or normalising the
    whole batch at once, measured slower).
    """
    cams = np.asarray(cams)
    if cams.ndim != 3:
        raise ValueError(f"CAMs must be (batch, h, w), got shape {cams.shape}")
    height, width = int(out_hw[0]), int(out_hw[1])
    out = np.empty((len(cams), height, width), np.float64)
    # The reference's cast (t2n); widening float32 (or bfloat16) to float64 is exact.
    for cam, dst in zip(cams.astype(np.float64), out):
        resized = cv2.resize(cam, (width, height), dst=dst, interpolation=cv2.INTER_CUBIC)
        if not np.may_share_memory(resized, dst):  # cv2 allocated instead of writing into dst
            dst[...] = resized
        normalize_scoremap_inplace(dst)
    return out


def normalize_scoremap_np(cam: np.ndarray) -> np.ndarray:
    """The reference min-max normalisation of one map, in numpy."""
    cam = np.array(cam, copy=True)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def prepare_scoremap_cv2(cam: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """One map through the reference path: float64 cast, cv2 bicubic resize, normalisation."""
    return reference_scoremaps(np.asarray(cam)[None], out_hw)[0]
