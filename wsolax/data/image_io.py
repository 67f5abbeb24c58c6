"""Decoding image and mask files into numpy arrays.

OpenCV is the fast path (it releases the GIL, so grain's reader threads run in
parallel); Pillow is the fallback for formats or modes OpenCV can't handle
(e.g. palette GIFs, some CMYK JPEGs), and its error text helps diagnose corrupt
files. Both failing means the file is corrupt: we raise DatasetError naming it.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from wsolax.data.errors import DatasetError


def _read_bytes(path: str | os.PathLike) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as e:
        raise DatasetError(f"cannot read file {os.fspath(path)}: {e}") from e


def _decode_with_pillow(path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            # convert() handles L, LA, P, RGBA, CMYK, I;16 ... uniformly.
            return np.asarray(im.convert(mode))
    except Exception as e:  # Pillow raises many types for bad data.
        raise DatasetError(f"corrupt or unreadable image {os.fspath(path)}: {e}") from e


def decode_rgb(path: str | os.PathLike) -> np.ndarray:
    """Returns the image at `path` as an RGB uint8 array of shape (H, W, 3)."""
    # IMREAD_COLOR_RGB drops alpha and expands greyscale; it returns None
    # (never raises) when the data is not decodable. EXIF orientation is
    # ignored, like Pillow (and so the reference code and image_sizes.txt) do.
    image = cv2.imdecode(_read_bytes(path), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        image = _decode_with_pillow(path, "RGB")
    return np.ascontiguousarray(image)


def decode_grey(path: str | os.PathLike) -> np.ndarray:
    """Returns a single-channel uint8 (H, W) array, e.g. a 0/255 mask."""
    image = cv2.imdecode(_read_bytes(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        image = _decode_with_pillow(path, "L")
    return image
