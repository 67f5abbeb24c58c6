"""Reusable buffers of the fast box path.

Layout: every per-pixel array uses the image padded by one pixel on each
side, (H + 2) x (W + 2), flattened.  OpenCV also pads with zeros before it
follows contours, and the padding removes all bounds checks from the
neighbour loops.  A pixel (y, x) of the image has flat index
p = (y + 1) * (W + 2) + (x + 1); padded indices keep raster order.

Each union-find keeps a `parent` array (hot: every neighbour lookup walks
it) and a per-node table `st` (touched only when a pixel joins or two
components merge), plus a "live" list of current roots so that a cut is
summarised by scanning only the components that exist then.

Fresh allocations are expensive on the target machine (page faults cost
more than the passes), so buffers are allocated once per map shape and
reused.
"""

from __future__ import annotations

import numpy as np

from ._neighbours import neighbour_offsets

# Columns of the per-node table `st` (int32).
SIZE, X0, Y0, X1, Y1, LIVEPOS, AREA2, FIRST = range(8)
HEAD, TAIL = AREA2, FIRST  # the background pass reuses the last two columns
NUM_COLUMNS = 8


class PassBuffers:
    """Buffers of one union-find over the padded image (+1 frame node)."""

    def __init__(self, n: int):
        self.parent = np.empty(n + 1, np.int32)
        self.st = np.empty((n + 1, NUM_COLUMNS), np.int32)
        self.inside = np.empty(n, np.uint8)
        self.dirty = np.empty(n + 1, np.uint8)
        self.cached = np.empty(n + 1, np.float64)
        self.live = np.empty(n, np.int32)


class Workspace:
    """All buffers needed to summarise one H x W map, reused across maps."""

    def __init__(self, height: int, width: int):
        # int32 state: coordinates are packed as (y << 16) | x and doubled
        # areas must fit, which holds below 16384 pixels per side.
        if max(height, width) >= 1 << 14:
            raise ValueError("score maps must be smaller than 16384 pixels "
                             "per side")
        n = (height + 2) * (width + 2)
        self.shape = (height, width)
        self.offsets = neighbour_offsets(width + 2)
        self.background = PassBuffers(n)
        self.foreground = PassBuffers(n)
        self.filled = PassBuffers(n)
        self.next_pixel = np.empty(n, np.int32)  # pixel lists of holes
        self.q_pad = np.zeros((height + 2, width + 2), np.uint8)
        self.fill_pad = np.zeros((height + 2, width + 2), np.uint8)
        self.order = np.empty(n, np.int32)
        self.coords = np.empty(n, np.int32)
        self.start = np.empty(257, np.int64)
        self.raised = np.empty(n, np.int32)
        self.raised_start = np.empty(257, np.int64)
