"""Buffers, neighbourhood tables and numba helpers of the fast box path.

Layout: every per-pixel array uses the image padded by one pixel on each
side, (H + 2) x (W + 2), flattened.  OpenCV also pads with zeros before it
follows contours, and the padding removes all bounds checks from the
neighbour loops.  A pixel (y, x) of the image has flat index
p = (y + 1) * (W + 2) + (x + 1); padded indices keep raster order.

Each union-find keeps a `parent` array (hot: every neighbour lookup walks
it) and a per-root record table `st` (touched only when a pixel joins or two
components merge), plus a "live" list of current roots so that a cut is
summarised by scanning only the components that exist then.

Fresh allocations are expensive on the target machine (page faults cost
more than the passes), so buffers are allocated once per map shape and
reused.  They travel through the kernels as named tuples, which numba
unpacks into plain arrays; the per-level kernels unpack them into locals
before their pixel loops.  Numba calls that take arrays pay reference
counting per array argument, so the pixel loops keep their union-find code
inline and call helpers only once per level or per cut (`find` is
force-inlined).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

# --------------------------------------------------------------- root tables
# Every table starts with the component's pixel count (union by size), its
# pixel bbox and its index in the live list; the last two fields depend on
# what the pass needs.  Eight int32 fields keep a row at 32 bytes; without
# align=True numba would type the tables as unaligned arrays.
_COMMON_FIELDS = [("npix", np.int32), ("x0", np.int32), ("y0", np.int32),
                  ("x1", np.int32), ("y1", np.int32),
                  ("live_pos", np.int32)]
# Background pass: a hole's pixels as a list linked through `next_pixel`.
HOLE_ROW = np.dtype(_COMMON_FIELDS + [("head", np.int32),
                                      ("tail", np.int32)], align=True)
# Foreground passes: doubled bit-quad area and smallest (top-left) pixel.
COMPONENT_ROW = np.dtype(_COMMON_FIELDS + [("area2", np.int32),
                                           ("first", np.int32)], align=True)


class UnionFind(NamedTuple):
    """Buffers of one union-find over the padded image (+1 frame node)."""

    parent: np.ndarray  # (n + 1,) int32
    st: np.ndarray      # (n + 1,) HOLE_ROW or COMPONENT_ROW, valid at roots
    inside: np.ndarray  # (n,) uint8: pixel already added
    dirty: np.ndarray   # (n + 1,) uint8: box changed since `cached`
    cached: np.ndarray  # (n + 1,) float64: IoU of the root's contour box
    live: np.ndarray    # (n,) int32: current roots, st.live_pos indexes it


class Workspace(NamedTuple):
    """All buffers needed to summarise one H x W map, reused across maps."""

    q_pad: np.ndarray         # (H + 2, W + 2) uint8 input map, zero frame
    offsets: np.ndarray       # (8,) int64, `neighbour_offsets(W + 2)`
    order: np.ndarray         # (n,) int32: q's pixels sorted by level ...
    coords: np.ndarray        # (n,) int32: ... their (y << 16) | x ...
    start: np.ndarray         # (257,) int64: ... and where each level starts
    fill_pad: np.ndarray      # (H + 2, W + 2) uint8 hole-filled map
    raised: np.ndarray        # (n,) int32: hole pixels by fill level ...
    raised_start: np.ndarray  # (257,) int64: ... (see `_hole_pass`)
    next_pixel: np.ndarray    # (n,) int32: pixel lists of holes
    background: UnionFind
    foreground: UnionFind
    filled: UnionFind


def _union_find(n: int, row: np.dtype) -> UnionFind:
    return UnionFind(parent=np.empty(n + 1, np.int32),
                     st=np.empty(n + 1, row),
                     inside=np.empty(n, np.uint8),
                     dirty=np.empty(n + 1, np.uint8),
                     cached=np.empty(n + 1, np.float64),
                     live=np.empty(n, np.int32))


def new_workspace(height: int, width: int) -> Workspace:
    # int32 state: coordinates are packed as (y << 16) | x and doubled
    # areas must fit, which holds below 16384 pixels per side.
    if max(height, width) >= 1 << 14:
        raise ValueError("score maps must be smaller than 16384 pixels "
                         "per side")
    n = (height + 2) * (width + 2)
    return Workspace(
        q_pad=np.zeros((height + 2, width + 2), np.uint8),
        offsets=neighbour_offsets(width + 2),
        order=np.empty(n, np.int32),
        coords=np.empty(n, np.int32),
        start=np.empty(257, np.int64),
        fill_pad=np.zeros((height + 2, width + 2), np.uint8),
        raised=np.empty(n, np.int32),
        raised_start=np.empty(257, np.int64),
        next_pixel=np.empty(n, np.int32),
        background=_union_find(n, HOLE_ROW),
        foreground=_union_find(n, COMPONENT_ROW),
        filled=_union_find(n, COMPONENT_ROW))


# ------------------------------------------------------ 3x3 neighbourhoods
# The 8 neighbours of a pixel in raster order, as (dx, dy).  Bit k of a
# "neighbourhood mask" says whether neighbour k is already in the set.
NEIGHBOURS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1),
              (1, 1))


def neighbour_offsets(wp: int) -> np.ndarray:
    """Flat offsets of `NEIGHBOURS` in a padded image of width wp."""
    return np.array([dy * wp + dx for dx, dy in NEIGHBOURS], np.int64)


def _group_table(candidates, linked) -> tuple[np.ndarray, np.ndarray]:
    """For each neighbourhood mask, one representative neighbour per group
    of set candidate neighbours that are connected to each other inside the
    3x3 window (so certainly in the same component).

    A pixel merges with every group it touches, so one `find` per group is
    enough instead of one per neighbour (measured: about half the pass
    time).
    Returns (count[256], reps[256, 4]) as int64.
    """
    count = np.zeros(256, np.int64)
    reps = np.zeros((256, 4), np.int64)
    for mask in range(256):
        members = [k for k in range(8) if mask >> k & 1]
        label = {k: k for k in members}

        def root(k):
            while label[k] != k:
                k = label[k]
            return k

        for i in members:
            for j in members:
                if linked(NEIGHBOURS[i], NEIGHBOURS[j]):
                    label[root(i)] = root(j)
        seen = set()
        for k in members:
            if k in candidates and root(k) not in seen:
                seen.add(root(k))
                reps[mask, count[mask]] = k
                count[mask] += 1
    return count, reps


def _linked8(a, b) -> bool:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1


def _linked4(a, b) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


# Foreground is 8-connected: every set neighbour touches p.
GROUPS8_COUNT, GROUPS8_REPS = _group_table(range(8), _linked8)
# Background is 4-connected: only edge neighbours touch p, and they connect
# to each other through 4-paths around the window.
GROUPS4_COUNT, GROUPS4_REPS = _group_table((1, 3, 4, 6), _linked4)


# ----------------------------------------------------------- numba helpers
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
