"""Background pass: hole contours and the hole-filled level map.

At cut c the background is {q <= c}; it grows with c, so one union-find over
pixels in *increasing* q order sees the background of every cut.  OpenCV pads
the image with zeros, so background touching the image border is "outside";
a virtual frame node (index n) stands for that outside.  Every other
4-connected background component is a hole, and RETR_TREE returns one hole
contour for it, whose bounding rect is the hole's pixel bbox grown by one
pixel on each side (checked against cv2 in the tests).

The pass also records, per pixel, the first cut at which it is "outside"
(`fill`).  Thresholding that map, {fill > c}, gives every outermost
foreground component of cut c with its holes filled, i.e. exactly the region
enclosed by its outer contour; the foreground pass uses it for V1.  Pixels
whose fill level is above their own level ("raised" hole pixels) are listed
by fill level as they are found, so the foreground pass can walk the filled
map level by level without sorting it.
"""

from __future__ import annotations

import numba
import numpy as np

from ._kernels_common import best_iou, find
from ._neighbours import GROUPS4_COUNT, GROUPS4_REPS
from ._workspace import HEAD, LIVEPOS, SIZE, TAIL, X0, X1, Y0, Y1

# Largest cut the protocol can produce: int(0.999... * 255) = 254.
MAX_CUT = 254


@numba.njit(cache=True)
def grow_background(level, order, coords, start, offsets, parent, st, inside,
                    dirty, live, n_live, next_pixel, fill, q, raised, n_raised,
                    frame):
    """Add the pixels of one level to the background; returns the new
    numbers of live holes and of raised pixels.  Union-find code is inline
    on purpose (see `_kernels_common`).  Padding pixels are inside and
    belong to the frame, so border pixels need no special case."""
    for i in range(start[level], start[level + 1]):
        p = order[i]
        inside[p] = 1
        mask = 0
        for k in range(8):
            mask |= np.int64(inside[p + offsets[k]]) << k
        groups = GROUPS4_COUNT[mask]
        if groups == 0:
            # No background 4-neighbour: a new one-pixel hole.
            y = coords[i] >> 16
            x = coords[i] & 0xFFFF
            parent[p] = p
            st[p, SIZE] = 1
            st[p, X0] = x
            st[p, Y0] = y
            st[p, X1] = x
            st[p, Y1] = y
            st[p, HEAD] = p
            st[p, TAIL] = p
            next_pixel[p] = -1
            dirty[p] = 1
            live[n_live] = p
            st[p, LIVEPOS] = n_live
            n_live += 1
            continue
        # Attach p to its first neighbour group's component ...
        root = find(parent, p + offsets[GROUPS4_REPS[mask, 0]])
        parent[p] = root
        if root == frame:
            fill[p] = level
        else:
            y = coords[i] >> 16
            x = coords[i] & 0xFFFF
            st[root, SIZE] += 1
            st[root, X0] = min(st[root, X0], x)
            st[root, Y0] = min(st[root, Y0], y)
            st[root, X1] = max(st[root, X1], x)
            st[root, Y1] = max(st[root, Y1], y)
            next_pixel[st[root, TAIL]] = p
            st[root, TAIL] = p
            next_pixel[p] = -1
            dirty[root] = 1
        # ... and merge the other groups' components into it.
        for g in range(1, groups):
            other = find(parent, p + offsets[GROUPS4_REPS[mask, g]])
            if other == root:
                continue
            if other == frame or root == frame:
                # A hole opens to the outside: all its pixels leave the
                # filled map at this level.
                hole = root if other == frame else other
                pix = st[hole, HEAD]
                while pix != -1:
                    fill[pix] = level
                    if q[pix] < level:
                        raised[n_raised] = pix
                        n_raised += 1
                    pix = next_pixel[pix]
                parent[hole] = frame
                root = frame
            else:
                if st[root, SIZE] < st[other, SIZE]:
                    root, other = other, root
                parent[other] = root
                st[root, SIZE] += st[other, SIZE]
                st[root, X0] = min(st[root, X0], st[other, X0])
                st[root, Y0] = min(st[root, Y0], st[other, Y0])
                st[root, X1] = max(st[root, X1], st[other, X1])
                st[root, Y1] = max(st[root, Y1], st[other, Y1])
                next_pixel[st[root, TAIL]] = st[other, HEAD]
                st[root, TAIL] = st[other, TAIL]
                dirty[root] = 1
                hole = other
            # `hole` stopped being a live root: swap-remove it.
            last = live[n_live - 1]
            live[st[hole, LIVEPOS]] = last
            st[last, LIVEPOS] = st[hole, LIVEPOS]
            n_live -= 1
    return n_live, n_raised


@numba.njit(cache=True)
def best_hole_iou(width, height, st, dirty, cached, live, n_live, gt):
    """Best IoU over the hole contours alive now (-1.0 if there is none)."""
    best = -1.0
    for j in range(n_live):
        r = live[j]
        if dirty[r]:
            # Hole contour rect = hole bbox grown by 1; the reference then
            # clips the far corner to W-1 / H-1.
            cached[r] = best_iou(st[r, X0] - 1, st[r, Y0] - 1,
                                 min(st[r, X1] + 2, width - 1),
                                 min(st[r, Y1] + 2, height - 1), gt)
            dirty[r] = 0
        best = max(best, cached[r])
    return best


@numba.njit(cache=True)
def hole_pass(width, height, needed, gt, offsets, q_pad, order, coords, start,
              parent, st, inside, dirty, cached, live, next_pixel, fill_pad,
              raised, raised_start):
    """Scan background growth for every cut.

    Args:
      width, height: image size.
      needed: (256,) bool, cuts whose summary is wanted.
      gt: (k, 4) int64 GT boxes at input size.
      offsets: `neighbour_offsets(W + 2)`.
      q_pad: (H + 2, W + 2) uint8 map with a zero frame.
      order, coords, start: pixels of q sorted by level (`pixels_by_level`).
      fill_pad: output, (H + 2, W + 2) uint8 hole-filled map, zero frame.
      raised, raised_start: output, pixels whose fill level v exceeds their
        own level, in `raised[raised_start[v]:raised_start[v + 1]]`.
      (The rest are `Workspace` buffers.)

    Returns:
      hole_iou: (256,) float64, best hole-contour IoU per needed cut, -1.0
        where there is no hole.
    """
    wp = width + 2
    n = (height + 2) * wp
    frame = n
    q = q_pad.ravel()
    # The padding is background at every cut and belongs to the frame.
    inside[:] = 1
    parent[:] = frame
    fill = fill_pad.ravel()
    fill[:] = 0
    for y in range(1, height + 1):
        inside[y * wp + 1:y * wp + 1 + width] = 0
        # Pixels that never reach the outside stay filled at every cut.
        fill[y * wp + 1:y * wp + 1 + width] = 255
    hole_iou = np.full(256, -1.0)
    n_live = 0
    n_raised = 0
    for level in range(MAX_CUT + 1):
        raised_start[level] = n_raised
        n_live, n_raised = grow_background(
            level, order, coords, start, offsets, parent, st, inside, dirty,
            live, n_live, next_pixel, fill, q, raised, n_raised, frame)
        if needed[level]:
            hole_iou[level] = best_hole_iou(width, height, st, dirty, cached,
                                            live, n_live, gt)
    # Holes that never open keep fill level 255.
    raised_start[255] = n_raised
    for j in range(n_live):
        pix = st[live[j], HEAD]
        while pix != -1:
            raised[n_raised] = pix
            n_raised += 1
            pix = next_pixel[pix]
    raised_start[256] = n_raised
    return hole_iou
