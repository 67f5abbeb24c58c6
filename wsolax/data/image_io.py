"""Decoding image and mask files into numpy arrays.

Two decoders. "pil" is the benchmark's: `Image.open(f).convert('RGB')`, as clovaai/wsolevaluation's
`data_loaders.py` opens every image (Pillow's own conversion of greyscale, palette, CMYK and 16-bit
images). "cv2" is OpenCV (it releases the GIL, so grain's reader threads run in parallel), with
Pillow as the fallback for what OpenCV cannot read (e.g. palette GIFs); it converts CMYK and
16-bit images its own way, and reads masks as the benchmark's evaluation.py does (cv2.imread,
greyscale). Failing to decode means the file is corrupt: DatasetError naming it.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
from PIL import Image

from wsolax.data.errors import DatasetError


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DatasetError(f"cannot read file {os.fspath(path)}: {e}") from e


DECODERS = ("pil", "cv2")


def _decode_pil(data: bytes, name: str, grey: bool) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            # convert() handles L, LA, P, RGBA, CMYK, I;16 ... uniformly.
            return np.asarray(im.convert("L" if grey else "RGB"))
    except Exception as e:  # Pillow raises many types for bad data.
        raise DatasetError(f"corrupt or unreadable image {name}: {e}") from e


def decode_bytes(data: bytes, name: str, grey: bool = False, decoder: str = "cv2") -> np.ndarray:
    """RGB uint8 (H, W, 3), or with `grey` (H, W), from encoded image bytes; `name` is what an
    error calls them (a path, or a record of a TFDS split); `decoder` as the module says."""
    if decoder == "pil":
        return np.ascontiguousarray(_decode_pil(data, name, grey))
    if decoder != "cv2":
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    # IMREAD_COLOR_RGB drops alpha and expands greyscale; imdecode returns None (never raises)
    # when the data is not decodable. EXIF orientation is ignored, like Pillow (and so the
    # reference code and image_sizes.txt) do.
    flags = (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR_RGB) | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if image is None:
        image = _decode_pil(data, name, grey)
    return np.ascontiguousarray(image)


def decode_rgb(path: str | os.PathLike, decoder: str = "cv2") -> np.ndarray:
    """Returns the image at `path` as an RGB uint8 array of shape (H, W, 3)."""
    return decode_bytes(_read_bytes(path), os.fspath(path), decoder=decoder)


def decode_grey(path: str | os.PathLike, decoder: str = "cv2") -> np.ndarray:
    """Returns a single-channel uint8 (H, W) array, e.g. a 0/255 mask."""
    return decode_bytes(_read_bytes(path), os.fspath(path), grey=True, decoder=decoder)
