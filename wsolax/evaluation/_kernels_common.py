"""Numba helpers shared by the per-pixel passes of the fast box path.

Numba calls that take arrays pay reference counting per array argument, so
the per-pixel loops keep their union-find code inline and call helpers only
once per level or per cut (`find` is force-inlined).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def pixels_by_level(img_pad, order, coords, start):
    """Counting sort of the image inside the 1-pixel padding: the padded
    indices of level v end up in `order[start[v]:start[v + 1]]`, in raster
    order, and their image coordinates in `coords` as (y << 16) | x.

    The passes read coordinates from `coords` (sequentially) because
    recovering them from p with an integer division costs more than the
    rest of the per-pixel bookkeeping.
    """
    height = img_pad.shape[0] - 2
    width = img_pad.shape[1] - 2
    start[:] = 0
    for y in range(1, height + 1):
        for x in range(1, width + 1):
            start[np.int64(img_pad[y, x]) + 1] += 1
    for v in range(256):
        start[v + 1] += start[v]
    fill = start[:256].copy()
    wp = width + 2
    for y in range(1, height + 1):
        for x in range(1, width + 1):
            v = img_pad[y, x]
            order[fill[v]] = y * wp + x
            coords[fill[v]] = ((y - 1) << 16) | (x - 1)
            fill[v] += 1


@numba.njit(cache=True, inline="always")
def find(parent, x):
    """Root of x, with path halving so later finds stay short."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(cache=True)
def best_iou(x0, y0, x1, y1, gt):
    """Highest IoU of one box against all GT boxes (reference formula:
    inclusive coordinates, integer areas, one float64 division)."""
    best = 0.0
    area_a = np.int64(x1 - x0 + 1) * np.int64(y1 - y0 + 1)
    for j in range(gt.shape[0]):
        iw = min(x1, gt[j, 2]) - max(x0, gt[j, 0]) + 1
        ih = min(y1, gt[j, 3]) - max(y0, gt[j, 1]) + 1
        inter = np.int64(max(0, iw)) * np.int64(max(0, ih))
        area_b = (gt[j, 2] - gt[j, 0] + 1) * (gt[j, 3] - gt[j, 1] + 1)
        denom = area_a + area_b - inter
        iou = 0.0 if denom <= 0 else inter / denom
        if iou > best:
            best = iou
    return best
