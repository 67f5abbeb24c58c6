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

from ._kernels import GROUPS4_COUNT, GROUPS4_REPS, best_iou, find

# Largest cut the protocol can produce: int(0.999... * 255) = 254.
MAX_CUT = 254


@numba.njit(cache=True)
def grow_background(ws, level, n_live, n_raised):
    """Add the pixels of one level to the background; returns the new
    numbers of live holes and of raised pixels.  Union-find code is inline
    on purpose (see `_kernels`).  Padding pixels are inside and belong to
    the frame, so border pixels need no special case."""
    order, coords, start, offsets = ws.order, ws.coords, ws.start, ws.offsets
    next_pixel, raised = ws.next_pixel, ws.raised
    q = ws.q_pad.ravel()
    fill = ws.fill_pad.ravel()
    bg = ws.background
    parent, st, inside, dirty, live = (bg.parent, bg.st, bg.inside, bg.dirty,
                                       bg.live)
    frame = q.size
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
            st[p].npix = 1
            st[p].x0 = x
            st[p].y0 = y
            st[p].x1 = x
            st[p].y1 = y
            st[p].head = p
            st[p].tail = p
            next_pixel[p] = -1
            dirty[p] = 1
            live[n_live] = p
            st[p].live_pos = n_live
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
            st[root].npix += 1
            st[root].x0 = min(st[root].x0, x)
            st[root].y0 = min(st[root].y0, y)
            st[root].x1 = max(st[root].x1, x)
            st[root].y1 = max(st[root].y1, y)
            next_pixel[st[root].tail] = p
            st[root].tail = p
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
                pix = st[hole].head
                while pix != -1:
                    fill[pix] = level
                    if q[pix] < level:
                        raised[n_raised] = pix
                        n_raised += 1
                    pix = next_pixel[pix]
                parent[hole] = frame
                root = frame
            else:
                if st[root].npix < st[other].npix:
                    root, other = other, root
                parent[other] = root
                st[root].npix += st[other].npix
                st[root].x0 = min(st[root].x0, st[other].x0)
                st[root].y0 = min(st[root].y0, st[other].y0)
                st[root].x1 = max(st[root].x1, st[other].x1)
                st[root].y1 = max(st[root].y1, st[other].y1)
                next_pixel[st[root].tail] = st[other].head
                st[root].tail = st[other].tail
                dirty[root] = 1
                hole = other
            # `hole` stopped being a live root: swap-remove it.
            last = live[n_live - 1]
            live[st[hole].live_pos] = last
            st[last].live_pos = st[hole].live_pos
            n_live -= 1
    return n_live, n_raised


@numba.njit(cache=True)
def best_hole_iou(bg, n_live, gt, width, height):
    """Best IoU over the hole contours alive now (-1.0 if there is none)."""
    st, dirty, cached, live = bg.st, bg.dirty, bg.cached, bg.live
    best = -1.0
    for j in range(n_live):
        r = live[j]
        if dirty[r]:
            # Hole contour rect = hole bbox grown by 1; the reference then
            # clips the far corner to W-1 / H-1.
            cached[r] = best_iou(st[r].x0 - 1, st[r].y0 - 1,
                                 min(st[r].x1 + 2, width - 1),
                                 min(st[r].y1 + 2, height - 1), gt)
            dirty[r] = 0
        best = max(best, cached[r])
    return best


@numba.njit(cache=True)
def hole_pass(ws, needed, gt):
    """Scan background growth for every cut.

    Args:
      ws: `Workspace` of q's shape; ws.q_pad holds q and ws.order/coords/
        start its pixels by level (`pixels_by_level`).  Fills ws.fill_pad
        (the hole-filled map, zero frame) and lists the pixels whose fill
        level v exceeds their own level in
        `ws.raised[ws.raised_start[v]:ws.raised_start[v + 1]]`.
      needed: (256,) bool, cuts whose summary is wanted.
      gt: (k, 4) int64 GT boxes at input size.

    Returns:
      hole_iou: (256,) float64, best hole-contour IoU per needed cut, -1.0
        where there is no hole.
    """
    height = ws.q_pad.shape[0] - 2
    width = ws.q_pad.shape[1] - 2
    wp = width + 2
    bg = ws.background
    raised, raised_start = ws.raised, ws.raised_start
    # The padding is background at every cut and belongs to the frame
    # (the extra node after the pixels).
    bg.inside[:] = 1
    bg.parent[:] = ws.q_pad.size
    inside = bg.inside
    fill = ws.fill_pad.ravel()
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
        n_live, n_raised = grow_background(ws, level, n_live, n_raised)
        if needed[level]:
            hole_iou[level] = best_hole_iou(bg, n_live, gt, width, height)
    # Holes that never open keep fill level 255.
    raised_start[255] = n_raised
    for j in range(n_live):
        pix = bg.st[bg.live[j]].head
        while pix != -1:
            raised[n_raised] = pix
            n_raised += 1
            pix = ws.next_pixel[pix]
    raised_start[256] = n_raised
    return hole_iou
