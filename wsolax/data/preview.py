"""A grid of a few images of a split with their ground-truth boxes (for READMEs
and for eyeballing a dataset before training on it)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from wsolax.data.image_io import decode_rgb
from wsolax.data.metadata import SplitMetadata

_BOX_COLOUR = (0, 255, 0)
_TEXT_COLOUR = (255, 255, 255)


def _cell(meta: SplitMetadata, image_id: str, size: int) -> np.ndarray:
    image = decode_rgb(meta.image_path(image_id))
    h, w = image.shape[:2]
    # Nearest neighbour keeps tiny synthetic images crisp when enlarged.
    cell = cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
    sx, sy = size / w, size / h
    for x0, y0, x1, y1 in meta.boxes[image_id]:
        # Inclusive pixel boxes: the far edge is the end of pixel x1.
        top_left = (int(x0 * sx), int(y0 * sy))
        bottom_right = (int((x1 + 1) * sx) - 1, int((y1 + 1) * sy) - 1)
        cv2.rectangle(cell, top_left, bottom_right, _BOX_COLOUR, 1)
    cv2.putText(cell, str(meta.labels[image_id]), (3, 14), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, _TEXT_COLOUR, 1, cv2.LINE_AA)
    return cell


def save_preview_grid(meta: SplitMetadata, out_path: str | os.PathLike, *,
                      num: int = 16, columns: int = 8, cell_size: int = 128) -> np.ndarray:
    """Saves the first `num` images of the split with boxes and labels as one PNG;
    returns the grid (H, W, 3) uint8 RGB."""
    ids = meta.image_ids[:num]
    cells = [_cell(meta, i, cell_size) for i in ids]
    cells += [np.zeros_like(cells[0])] * (-len(cells) % columns)
    rows = [np.concatenate(cells[i:i + columns], axis=1) for i in range(0, len(cells), columns)]
    grid = np.concatenate(rows, axis=0)
    if not cv2.imwrite(os.fspath(out_path), grid[..., ::-1]):
        raise OSError(f"could not write {out_path}")
    return grid
