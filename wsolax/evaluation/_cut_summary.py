"""One compiled entry point running the per-pixel passes for one map.

Keeping the sequence inside numba avoids unboxing the ~25 workspace buffers
from Python once per pass.
"""

from __future__ import annotations

import numba

from ._component_pass import component_pass
from ._hole_pass import hole_pass
from ._kernels_common import pixels_by_level


@numba.njit(cache=True)
def summarise_cuts(q_pad, needed, gt, offsets, order, coords, start,
                   fill_pad, raised, raised_start, next_pixel,
                   bg_parent, bg_st, bg_inside, bg_dirty, bg_cached, bg_live,
                   fg_parent, fg_st, fg_inside, fg_dirty, fg_cached, fg_live,
                   f_parent, f_st, f_inside, f_dirty, f_live):
    """Per-cut summaries of the (H + 2, W + 2) zero-framed uint8 map q_pad.

    Returns (hole_iou, outer_iou, v1_iou, fallback), each (256,) by cut; see
    `hole_pass` and `component_pass`.
    """
    height = q_pad.shape[0] - 2
    width = q_pad.shape[1] - 2
    # One sort of q serves both directions (levels read up or down).
    pixels_by_level(q_pad, order, coords, start)
    hole_iou = hole_pass(width, height, needed, gt, offsets, q_pad, order,
                         coords, start, bg_parent, bg_st, bg_inside, bg_dirty,
                         bg_cached, bg_live, next_pixel, fill_pad, raised,
                         raised_start)
    outer_iou, v1_iou, fallback = component_pass(
        width, height, needed, gt, offsets, order, coords, start, fill_pad,
        raised, raised_start, fg_parent, fg_st, fg_inside, fg_dirty,
        fg_cached, fg_live, f_parent, f_st, f_inside, f_dirty, f_live)
    return hole_iou, outer_iou, v1_iou, fallback
