"""Input validation for the evaluator, with errors that say what is wrong.

A wrong input would otherwise give a silently wrong benchmark number, so
every batch is checked before any state changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np


class EvaluationInputError(ValueError):
    """An input given to the WSOL evaluator breaks the protocol's contract."""


def check_annotations(gt_boxes: Mapping[str, np.ndarray],
                      image_sizes: Mapping[str, Sequence[int]]) -> None:
    """Every annotated image has >= 1 box (x0, y0, x1, y1) and a size."""
    for image_id, boxes in gt_boxes.items():
        boxes = np.asarray(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
            raise EvaluationInputError(
                f"GT boxes of image {image_id!r} must be a (k, 4) array with "
                f"k >= 1, got shape {boxes.shape}.")
        if not np.isfinite(boxes.astype(np.float64)).all():
            raise EvaluationInputError(
                f"GT boxes of image {image_id!r} contain NaN or inf.")
        if image_id not in image_sizes:
            raise EvaluationInputError(
                f"Image {image_id!r} has GT boxes but no entry in "
                "image_sizes.")
        size = tuple(image_sizes[image_id])
        if len(size) != 2 or min(size) <= 0:
            raise EvaluationInputError(
                f"image_sizes[{image_id!r}] must be a positive (width, height), "
                f"got {size}.")


def check_image_ids(image_ids: Sequence[str], annotated: Collection[str],
                    seen: Collection[str]) -> list[str]:
    """Ids must be annotated, new to this evaluation and unique in the batch."""
    image_ids = list(image_ids)
    batch = set()
    for image_id in image_ids:
        if image_id not in annotated:
            raise EvaluationInputError(
                f"Image {image_id!r} has no GT box annotation.")
        if image_id in seen or image_id in batch:
            raise EvaluationInputError(
                f"Image {image_id!r} was accumulated twice.")
        batch.add(image_id)
    return image_ids


def check_scoremaps(scoremaps, batch_size: int,
                    input_size: tuple[int, int]) -> np.ndarray:
    """(B, H, W) floating maps, finite and in [0, 1]."""
    maps = np.asarray(scoremaps)
    if not np.issubdtype(maps.dtype, np.floating):
        raise EvaluationInputError(
            f"Score maps must be floating point in [0, 1], got dtype "
            f"{maps.dtype}.")
    expected = (batch_size, *input_size)
    if maps.shape != expected:
        raise EvaluationInputError(
            f"Score maps must have shape (batch, H, W) = {expected}, got "
            f"{maps.shape}. Resize CAMs to the input size first.")
    if np.isnan(maps).any():
        raise EvaluationInputError(
            "Score maps contain NaN; normalise them (constant or NaN maps "
            "become all zeros).")
    if maps.size and (maps.min() < 0 or maps.max() > 1):
        raise EvaluationInputError(
            f"Score maps must lie in [0, 1], got range [{maps.min()}, "
            f"{maps.max()}]; min-max normalise them first.")
    return maps


def check_class_ids(name: str, values, shape: tuple[int, ...],
                    num_classes: int | None) -> np.ndarray:
    """Integer class ids of the given shape, in range when known."""
    array = np.asarray(values)
    if array.shape != shape:
        raise EvaluationInputError(
            f"{name} must have shape {shape}, got {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise EvaluationInputError(
            f"{name} must hold integer class ids, got dtype {array.dtype}.")
    array = array.astype(np.int64)
    if num_classes is not None and array.size and (
            array.min() < 0 or array.max() >= num_classes):
        raise EvaluationInputError(
            f"{name} must lie in [0, {num_classes}), got range "
            f"[{array.min()}, {array.max()}].")
    return array


def check_mask(mask, image_id: str, input_size: tuple[int, int]) -> np.ndarray:
    """A GT mask at input size with values 0 (bg), 1 (fg) or 255 (ignore)."""
    if mask is None:
        raise EvaluationInputError(
            f"PxAP needs a GT mask but mask_loader returned None for image "
            f"{image_id!r}.")
    mask = np.asarray(mask)
    if mask.shape != tuple(input_size):
        raise EvaluationInputError(
            f"GT mask of image {image_id!r} must have the input size "
            f"{tuple(input_size)}, got {mask.shape}.")
    if not np.isin(mask, (0, 1, 255)).all():
        raise EvaluationInputError(
            f"GT mask of image {image_id!r} may only contain 0 (background), "
            "1 (foreground) and 255 (ignore).")
    return mask
