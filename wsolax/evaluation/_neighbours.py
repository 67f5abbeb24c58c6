"""3x3 neighbourhood tables for the union-find passes.

Pixels use the padded flat layout of `_workspace`; a neighbourhood is
encoded as an 8-bit mask over `NEIGHBOURS`.
"""

from __future__ import annotations

import numpy as np

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
