"""Image and box transforms of the input pipeline (plain numpy, Pillow, OpenCV).

Resizing has two methods (`data.resize`):

* "pil_bilinear" -- the benchmark's: clovaai/wsolevaluation's `data_loaders.py` resizes PIL images
  with torchvision's `transforms.Resize((h, w))`, i.e. Pillow's `Image.resize(..., BILINEAR)`,
  whose filter widens with the scale factor when it shrinks (it antialiases). Done by Pillow
  itself, so the pixels are Pillow's, byte for byte.
* "cv2_linear" -- OpenCV's `INTER_LINEAR`: no antialiasing (each output pixel blends the 2 x 2
  nearest inputs whatever the scale). Faster; the embedded benchmark's published runs used it.

Box convention: x0, y0, x1, y1 in pixels of the current image, as in the
wsolevaluation metadata. Resizing scales coordinates by new/old size (what
the benchmark does to its ground truth, so our boxes match its evaluator);
a horizontal flip maps pixel x to (width - 1) - x.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

# ImageNet statistics in [0, 1] units: what pretrained backbones expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """An int means a square; a pair is (height, width)."""
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    h, w = size
    return (int(h), int(w))


# Each resize method with the decoder of its pipeline (wsolax.data.image_io): the benchmark's
# images come from Pillow end to end.
DECODER_OF = {"pil_bilinear": "pil", "cv2_linear": "cv2"}
RESIZE_METHODS = tuple(DECODER_OF)


def resize(image: np.ndarray, hw: tuple[int, int], method: str = "pil_bilinear") -> np.ndarray:
    """uint8 (H, W, 3) -> (hw[0], hw[1], 3) by `method` (module docstring)."""
    if image.shape[:2] == hw:
        return image
    if method == "pil_bilinear":
        return np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), Image.Resampling.BILINEAR))
    if method == "cv2_linear":
        return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    raise ValueError(f"resize method must be one of {RESIZE_METHODS}, got {method!r}")


def scale_boxes(boxes: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    return boxes * np.array([sx, sy, sx, sy], dtype=boxes.dtype)


def crop_boxes(boxes: np.ndarray, top: int, left: int, crop_hw: tuple[int, int]) -> np.ndarray:
    """Boxes in the coordinates of a crop, clipped to it; boxes entirely
    outside the crop are dropped (they no longer describe anything visible)."""
    h, w = crop_hw
    shifted = boxes - np.array([left, top, left, top], dtype=boxes.dtype)
    visible = ((shifted[:, 2] >= 0) & (shifted[:, 0] <= w - 1)
               & (shifted[:, 3] >= 0) & (shifted[:, 1] <= h - 1))
    shifted = shifted[visible]
    return np.clip(shifted, 0, np.array([w - 1, h - 1, w - 1, h - 1], dtype=boxes.dtype))


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    flipped = boxes.copy()
    flipped[:, 0] = (width - 1) - boxes[:, 2]
    flipped[:, 2] = (width - 1) - boxes[:, 0]
    return flipped


def pad_boxes(boxes: np.ndarray, max_boxes: int) -> tuple[np.ndarray, np.int32]:
    """(max_boxes, 4) float32 zero-padded boxes and the number of real ones,
    so every example has the same shape and batches stay static."""
    if len(boxes) > max_boxes:
        raise ValueError(f"{len(boxes)} boxes do not fit max_boxes={max_boxes}")
    out = np.zeros((max_boxes, 4), dtype=np.float32)
    out[:len(boxes)] = boxes
    return out, np.int32(len(boxes))


class Normalizer:
    """uint8 images -> float32 (x / 255 - mean) / std, in one fused step."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        std = np.asarray(std, dtype=np.float32)
        if std.shape != (3,) or np.asarray(mean).shape != (3,) or np.any(std <= 0):
            raise ValueError(f"mean and std need 3 values, std > 0; got {mean}, {std}")
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.offset = (-np.asarray(mean, dtype=np.float32) / std).astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = images.astype(np.float32)
        out *= self.scale  # in place: no batch-sized temporaries
        out += self.offset
        return out
