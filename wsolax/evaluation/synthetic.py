"""Seeded synthetic evaluation inputs for tests and benchmarks.

CAM-like score maps are small random grids upsampled with the protocol's own
score-map preparation (bicubic, min-max), which gives the smooth blobs with
several local maxima that real CAMs have.
"""

from __future__ import annotations

import numpy as np

from .reference_scoremap import prepare_scoremap_cv2


def cam_like_scoremaps(rng: np.random.Generator, num: int,
                       input_hw: tuple[int, int],
                       grid_hw: tuple[int, int] = (14, 14)) -> np.ndarray:
    """(num, H, W) float32 maps in [0, 1] from random grid_hw CAMs."""
    return np.stack([
        prepare_scoremap_cv2(rng.random(grid_hw, dtype=np.float32), input_hw)
        for _ in range(num)])


def random_boxes(rng: np.random.Generator, width: int, height: int,
                 num: int) -> np.ndarray:
    """(num, 4) int boxes (x0, y0, x1, y1) with x0 <= x1 < width, y0 <= y1 <
    height; sizes vary from single pixels to the whole image."""
    xs = np.sort(rng.integers(0, width, (num, 2)), axis=1)
    ys = np.sort(rng.integers(0, height, (num, 2)), axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


def random_annotations(rng: np.random.Generator, image_ids,
                       max_boxes: int = 3, min_side: int = 50,
                       max_side: int = 500):
    """Random original sizes (width, height) and 1..max_boxes GT boxes per
    image, in original pixel coordinates.  Returns (gt_boxes, image_sizes)."""
    gt_boxes, image_sizes = {}, {}
    for image_id in image_ids:
        width, height = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
        image_sizes[image_id] = (width, height)
        gt_boxes[image_id] = random_boxes(rng, width, height,
                                          int(rng.integers(1, max_boxes + 1)))
    return gt_boxes, image_sizes
