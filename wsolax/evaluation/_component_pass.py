"""Foreground pass: outer contours (V2) and the V1 largest contour.

At cut c the foreground is {q > c}; it grows as c decreases, so one
union-find over pixels in *decreasing* level order sees the 8-connected
components of every cut.  The outer contour of a component has the
component's pixel bbox as bounding rect.

Two union-finds run in lockstep over the levels:

* on q: every foreground component = every outer contour, for V2;
* on the hole-filled map (see `_hole_pass`): the outermost components with
  their holes filled.  OpenCV's `contourArea` of an outer contour (polygon
  through boundary pixel centres) equals the bit-quad area of the filled
  region, #(2x2 windows fully inside) + #(windows with 3 pixels inside) / 2,
  kept here doubled as an integer.  Every nested contour (hole or island) is
  enclosed by an outermost one and has at most its area, so the V1 contour
  is the largest filled component unless areas tie.  Its box is that of
  the unfilled component it contains (holes lie inside it), found through
  the filled component's top-left pixel, so the filled pass keeps no boxes.

When the choice depends on OpenCV's contour order the cut is flagged for a
literal cv2 fallback: (a) several largest filled components with different
boxes; (b) the winner has holes and zero own area, where one of its hole
contours can have the same area (OpenCV lists a parent before its holes, but
we do not rely on it).
"""

from __future__ import annotations

import numba
import numpy as np

from ._kernels import GROUPS8_COUNT, GROUPS8_REPS, best_iou, find


def _quad_gain_table() -> np.ndarray:
    """Doubled bit-quad area gained when a pixel joins, per 8-neighbour mask.

    Bit k of the mask is set when `NEIGHBOURS[k]` is already foreground.
    The pixel lies in four 2x2 windows (bits: top-left {0,1,3}, top-right
    {1,2,4}, bottom-left {3,5,6}, bottom-right {4,6,7}).  A window reaching
    3 pixels gains 1/2 (doubled: 1), reaching 4 gains another 1/2.
    """
    windows = ((0, 1, 3), (1, 2, 4), (3, 5, 6), (4, 6, 7))
    table = np.zeros(256, np.int32)
    for mask in range(256):
        for window in windows:
            count = 1 + sum((mask >> bit) & 1 for bit in window)
            table[mask] += count >= 3
    return table


_QUAD_GAIN2 = _quad_gain_table()


@numba.njit(cache=True)
def grow_foreground(uf, n_live, pixels, offsets, coords, skip_map,
                    keep_level):
    """Add `pixels` to the foreground of union-find `uf`; returns the new
    number of live components.

    With keep_level >= 0, pixels p with skip_map[p] != keep_level are
    skipped (used to walk the filled map through q's level order).  Box
    updates (from `coords`, aligned with `pixels`) are a third of the
    per-pixel cost, so a union-find without boxes passes coords=None,
    which numba compiles as a separate specialisation without them.
    Union-find code is inline on purpose (see `_kernels`); the padding is
    never inside.
    """
    parent, st, inside, dirty, live = (uf.parent, uf.st, uf.inside, uf.dirty,
                                       uf.live)
    for i in range(pixels.size):
        p = pixels[i]
        if keep_level >= 0 and skip_map[p] != keep_level:
            continue
        inside[p] = 1
        mask = 0
        for k in range(8):
            mask |= np.int64(inside[p + offsets[k]]) << k
        groups = GROUPS8_COUNT[mask]
        if groups == 0:
            # No foreground neighbour: a new one-pixel component.
            root = p
            parent[p] = p
            st[p].npix = 1
            st[p].area2 = 0
            st[p].first = p
            if coords is not None:
                y = coords[i] >> 16
                x = coords[i] & 0xFFFF
                st[p].x0 = x
                st[p].y0 = y
                st[p].x1 = x
                st[p].y1 = y
                dirty[p] = 1
            live[n_live] = p
            st[p].live_pos = n_live
            n_live += 1
        else:
            # Attach p to its first neighbour group's component ...
            root = find(parent, p + offsets[GROUPS8_REPS[mask, 0]])
            parent[p] = root
            st[root].npix += 1
            st[root].first = min(st[root].first, p)
            if coords is not None:
                y = coords[i] >> 16
                x = coords[i] & 0xFFFF
                st[root].x0 = min(st[root].x0, x)
                st[root].y0 = min(st[root].y0, y)
                st[root].x1 = max(st[root].x1, x)
                st[root].y1 = max(st[root].y1, y)
                dirty[root] = 1
            # ... and merge the other groups' components into it.
            for g in range(1, groups):
                other = find(parent, p + offsets[GROUPS8_REPS[mask, g]])
                if other == root:
                    continue
                if st[root].npix < st[other].npix:
                    root, other = other, root
                parent[other] = root
                st[root].npix += st[other].npix
                st[root].area2 += st[other].area2
                st[root].first = min(st[root].first, st[other].first)
                if coords is not None:
                    st[root].x0 = min(st[root].x0, st[other].x0)
                    st[root].y0 = min(st[root].y0, st[other].y0)
                    st[root].x1 = max(st[root].x1, st[other].x1)
                    st[root].y1 = max(st[root].y1, st[other].y1)
                    dirty[root] = 1
                last = live[n_live - 1]
                live[st[other].live_pos] = last
                st[last].live_pos = st[other].live_pos
                n_live -= 1
        # A 2x2 window with 3 or 4 pixels lies in one 8-connected component,
        # so the area it gains belongs to p's (merged) component.
        st[root].area2 += _QUAD_GAIN2[mask]
    return n_live


@numba.njit(cache=True)
def best_outer_iou(fg, n_live, gt, width, height):
    """Best IoU over all outer contours alive now; boxes only change when a
    component grows, so IoUs are cached per root."""
    st, dirty, cached, live = fg.st, fg.dirty, fg.cached, fg.live
    best = -1.0
    for j in range(n_live):
        r = live[j]
        if dirty[r]:
            cached[r] = best_iou(st[r].x0, st[r].y0,
                                 min(st[r].x1 + 1, width - 1),
                                 min(st[r].y1 + 1, height - 1), gt)
            dirty[r] = 0
        best = max(best, cached[r])
    return best


@numba.njit(cache=True)
def largest_filled(filled, n_live_f, fg):
    """Unfilled root of the largest filled component, and whether another
    one of the same area has a different box (then OpenCV's order decides).

    A filled component's first (top-left) pixel lies on its outer border,
    so it is foreground of q and names the unfilled component, whose box is
    the filled one's.
    """
    st_f, live_f = filled.st, filled.live
    parent, st = fg.parent, fg.st
    win = live_f[0]
    tie = False
    for j in range(1, n_live_f):
        r = live_f[j]
        if st_f[r].area2 > st_f[win].area2:
            win = r
            tie = False
        elif st_f[r].area2 == st_f[win].area2:
            a = find(parent, st_f[r].first)
            b = find(parent, st_f[win].first)
            tie |= (st[a].x0 != st[b].x0 or st[a].y0 != st[b].y0
                    or st[a].x1 != st[b].x1 or st[a].y1 != st[b].y1)
    own = find(parent, st_f[win].first)
    # Zero own area with holes: a hole contour may tie with the outer one.
    if st[own].npix < st_f[win].npix and st[own].area2 == 0:
        tie = True
    return own, tie


@numba.njit(cache=True)
def component_pass(ws, needed, gt):
    """Scan foreground growth of q and of the filled map for every cut.

    `ws.order`/`coords`/`start` sort the pixels of q by level
    (`pixels_by_level`); the filled map's level v holds q's level-v pixels
    that were not raised plus the pixels raised to v (`hole_pass`, which
    fills `ws.fill_pad` and `ws.raised`).  Returns, each (256,) indexed by
    cut:
      outer_iou: best IoU of any outer contour (-1.0 where no foreground);
      v1_iou: IoU of the V1 box where it is decided;
      fallback: True where V1 needs the literal cv2 path.
    """
    height = ws.q_pad.shape[0] - 2
    width = ws.q_pad.shape[1] - 2
    order, coords, start, offsets = ws.order, ws.coords, ws.start, ws.offsets
    raised, raised_start = ws.raised, ws.raised_start
    fg, filled = ws.foreground, ws.filled
    fill = ws.fill_pad.ravel()
    fg.inside[:] = 0
    filled.inside[:] = 0
    n_live = 0
    n_live_f = 0
    outer_iou = np.full(256, -1.0)
    v1_iou = np.zeros(256)
    fallback = np.zeros(256, np.bool_)
    for level in range(255, 0, -1):
        lo, hi = start[level], start[level + 1]
        pixels = order[lo:hi]
        n_live = grow_foreground(fg, n_live, pixels, offsets, coords[lo:hi],
                                 fill, -1)
        n_live_f = grow_foreground(filled, n_live_f, pixels, offsets, None,
                                   fill, level)
        n_live_f = grow_foreground(
            filled, n_live_f,
            raised[raised_start[level]:raised_start[level + 1]], offsets,
            None, fill, -1)
        cut = level - 1
        if not needed[cut] or n_live == 0:
            continue
        outer_iou[cut] = best_outer_iou(fg, n_live, gt, width, height)
        own, tie = largest_filled(filled, n_live_f, fg)
        fallback[cut] = tie
        box = fg.st[own]
        v1_iou[cut] = best_iou(box.x0, box.y0, min(box.x1 + 1, width - 1),
                               min(box.y1 + 1, height - 1), gt)
    return outer_iou, v1_iou, fallback
