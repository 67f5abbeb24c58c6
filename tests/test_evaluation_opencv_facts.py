"""The OpenCV behaviours the fast box path is built on, checked directly.

If an OpenCV upgrade changes one of these, this file says which; the
fast-vs-oracle sweeps would only say that something differs.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)
FOUR = ndimage.generate_binary_structure(2, 1)


def random_masks(seed, count=400):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(1, 18, 2))
        yield rng.random((h, w)) < rng.uniform(0.2, 0.9)


def contours_of(mask):
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8) * 255,
                                           cv2.RETR_TREE,
                                           cv2.CHAIN_APPROX_SIMPLE)
    return contours, (hierarchy[0] if hierarchy is not None else None)


def bitquad_area(region):
    """#(2x2 windows fully inside) + #(windows with 3 pixels) / 2."""
    padded = np.pad(region.astype(np.int32), 1)
    counts = (padded[:-1, :-1] + padded[1:, :-1] + padded[:-1, 1:]
              + padded[1:, 1:])
    return (counts == 4).sum() + 0.5 * (counts == 3).sum()


def outside(mask):
    """Background 4-connected to the zero padding OpenCV adds."""
    labels, _ = ndimage.label(~np.pad(mask, 1), FOUR)
    return (labels == labels[0, 0])[1:-1, 1:-1]


def test_contour_rects_are_component_and_hole_bboxes():
    """RETR_TREE gives one contour per 8-connected component, with the pixel
    bbox as rect, and one per hole (4-connected background not reaching the
    border) with the hole's bbox grown by 1 pixel on every side."""
    for mask in random_masks(0):
        contours, _ = contours_of(mask)
        expected = []
        labels, n = ndimage.label(mask, EIGHT)
        for sl in ndimage.find_objects(labels):
            expected.append((sl[1].start, sl[0].start,
                             sl[1].stop - sl[1].start, sl[0].stop - sl[0].start))
        holes, _ = ndimage.label(~mask & ~outside(mask), FOUR)
        for sl in ndimage.find_objects(holes):
            expected.append((sl[1].start - 1, sl[0].start - 1,
                             sl[1].stop - sl[1].start + 2,
                             sl[0].stop - sl[0].start + 2))
        got = [tuple(cv2.boundingRect(c)) for c in contours]
        assert sorted(got) == sorted(expected)


def test_outer_contour_area_is_bitquad_area_of_filled_component():
    for mask in random_masks(1):
        contours, hierarchy = contours_of(mask)
        labels, _ = ndimage.label(mask, EIGHT)
        for contour, (_, _, _, parent) in zip(contours, hierarchy if
                                              hierarchy is not None else []):
            x, y = contour[0, 0]
            depth_even = True
            while parent != -1:
                depth_even = not depth_even
                parent = hierarchy[parent][3]
            if not depth_even:
                continue  # hole contour
            component = labels == labels[y, x]
            filled = ~outside(component)
            assert cv2.contourArea(contour) == bitquad_area(filled)


def test_largest_contour_is_an_outermost_outer_contour():
    """Nested contours never have a larger area than the outermost contour
    enclosing them (a hole can tie with its parent; OpenCV lists the parent
    first, the fast path does not rely on it and falls back instead)."""
    for mask in random_masks(2, 1500):
        contours, hierarchy = contours_of(mask)
        if not contours:
            continue
        areas = [cv2.contourArea(c) for c in contours]
        top = max(a for a, h in zip(areas, hierarchy) if h[3] == -1)
        assert max(areas) == top
        best = max(range(len(contours)), key=lambda i: areas[i])
        assert hierarchy[best][3] == -1
