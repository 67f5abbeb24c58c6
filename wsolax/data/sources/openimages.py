"""OpenImages30k of the CVPR'20 benchmark (Choe et al.) -> the metadata layout.

The benchmark distributes it nearly in this layout already: images under `root`
(`{train,val,test}/<class>/<id>.jpg`, masks beside them as `<id>_m<...>.png` and
`<id>_ignore.png`) and metadata per split (`metadata/OpenImages/{train,val,test}/` of the
wsolevaluation repository): image_ids.txt, class_labels.txt (100 classes), and for val and test the
mask list `id,mask_path,ignore_path` in localization.txt (or masks.txt), where only an image's
first line names its ignore mask. Mask paths are relative to the mask root (by default `root`).

What the conversion does, none of it touching the images:
- image_sizes.txt is read when present (and checked against the files) or computed;
- masks.txt gets the ignore mask on every line of an image (this reader requires them to agree);
- every mask must exist and decode; a mask of another size than its image is accepted (it is
  resized, nearest neighbour, at evaluation) unless its aspect ratio differs (a wrong mask);
- localization.txt gets one box per instance mask: the tight box of its pixels > 127, in image
  pixels (x1, y1 exclusive). OpenImages is scored by PxAP in the benchmark; these derived boxes
  only make the box metrics computable and are not the benchmark's.

Splits: train, val (the benchmark's train-fullsup: 25 images per class; --val-per-class N keeps N
of them per class, seeded, as the benchmark's num_val_sample_per_class does) and test.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import numpy as np

from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_grey
from wsolax.data.sources.common import (
    SPLITS, Prepared, Problems, Split, draw_per_class, measure_sizes, read_val_from, rel_id,
    unreadable, val_from_folder)

NUM_CLASSES = 100
SOURCE_METADATA = ("metadata", "metadata/OpenImages")
ASPECT_TOLERANCE = 0.02  # masks saved at another resolution keep the image's aspect ratio


def _source_metadata(root: Path, source) -> Path:
    if source is not None:
        return Path(source)
    for name in SOURCE_METADATA:
        if (root / name / "test" / "image_ids.txt").is_file():
            return root / name
    raise DatasetError(f"no benchmark metadata under {root} (looked in "
                       f"{', '.join(SOURCE_METADATA)}); pass --source-metadata "
                       f"<wsolevaluation>/metadata/OpenImages")


def _rows(path: Path, count: int, problems: Problems):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != count or not parts[0]:
                problems.add(f"{path}:{lineno}", f"expected {count} comma-separated fields, "
                                                 f"got {line!r}")
                continue
            yield f"{path}:{lineno}", parts


def _labels(folder: Path, problems: Problems) -> tuple[list[str], dict[str, int]]:
    ids, first = [], {}
    path = folder / "image_ids.txt"
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            image_id = line.strip()
            if not image_id:
                continue
            if image_id in first:
                problems.add(f"{path}:{lineno}", f"duplicate id {image_id!r} (first on line "
                                                 f"{first[image_id]})")
                continue
            first[image_id] = lineno
            ids.append(image_id)
    labels = {}
    for where, (image_id, text) in _rows(folder / "class_labels.txt", 2, problems):
        if image_id not in first:
            problems.add(where, f"id {image_id!r} is not in image_ids.txt")
        elif not text.isdigit() or int(text) >= NUM_CLASSES:
            problems.add(where, f"label {text!r} is out of range, must be 0..{NUM_CLASSES - 1}")
        else:
            labels[image_id] = int(text)
    for image_id in ids:
        if image_id not in labels:
            problems.add(str(folder / "class_labels.txt"), f"no label for {image_id!r}")
    return ids, labels


def _mask_lists(folder: Path, ids: list[str], problems: Problems):
    """id -> (instance mask paths, ignore path or None), from masks.txt or localization.txt."""
    path = folder / "masks.txt"
    if not path.is_file():
        path = folder / "localization.txt"
    if not path.is_file():
        problems.add(str(folder), "no masks.txt or localization.txt with the masks")
        return {}
    known = set(ids)
    masks: dict[str, tuple[list[str], str | None]] = {}
    for where, (image_id, mask, ignore) in _rows(path, 3, problems):
        if image_id not in known:
            problems.add(where, f"id {image_id!r} is not in image_ids.txt")
            continue
        paths, current = masks.setdefault(image_id, ([], None))
        paths.append(mask)
        if ignore and current and ignore != current:
            problems.add(where, f"second ignore mask {ignore!r} for {image_id!r} (first: "
                                f"{current!r})")
        elif ignore:
            masks[image_id] = (paths, ignore)
    for image_id in ids:
        if image_id not in masks:
            problems.add(str(path), f"no mask for {image_id!r}")
    return masks


def _instance_box(mask: np.ndarray, size: tuple[int, int]):
    """Tight box of the mask's foreground in image pixels; None for an empty mask."""
    rows = np.flatnonzero((mask > 127).any(axis=1))
    cols = np.flatnonzero((mask > 127).any(axis=0))
    if not len(rows):
        return None
    sx, sy = size[0] / mask.shape[1], size[1] / mask.shape[0]
    return (cols[0] * sx, rows[0] * sy, (cols[-1] + 1) * sx, (rows[-1] + 1) * sy)


def _check_masks(image_id, paths, ignore, size, mask_root: Path):
    """(boxes, problems, resized count) of one image's masks."""
    boxes, issues, resized = [], [], 0
    w, h = size
    for k, rel in enumerate(paths + ([ignore] if ignore else [])):
        if not (mask_root / rel).is_file():
            issues.append((str(mask_root / rel), f"mask file of {image_id} not found"))
            continue
        try:
            mask = decode_grey(mask_root / rel)
        except DatasetError as e:
            issues.append((str(mask_root / rel), f"unreadable mask ({e})"))
            continue
        mh, mw = mask.shape[:2]
        if (mw, mh) != (w, h):
            if abs((mw / mh) / (w / h) - 1) > ASPECT_TOLERANCE:
                issues.append((str(mask_root / rel), f"mask is {mw}x{mh}, its image {image_id} "
                                                     f"is {w}x{h} (another shape)"))
                continue
            resized += 1
        if k < len(paths):
            box = _instance_box(mask, size)
            if box is not None:
                boxes.append(box)
    if not boxes and not issues:
        issues.append((str(mask_root / paths[0]), f"every instance mask of {image_id} is empty"))
    return boxes, issues, resized


def _split(source: Path, name: str, root: Path, mask_root: Path, problems: Problems,
           notes: list[str], workers: int, bad_images: str) -> Split:
    folder = source / name
    if not (folder / "image_ids.txt").is_file():
        raise DatasetError(f"missing {folder / 'image_ids.txt'}")
    before = len(problems.items)
    ids, labels = _labels(folder, problems)
    if not ids:
        problems.add(str(folder / "image_ids.txt"), "empty split (no image ids)")
    missing = [i for i in ids if not (root / i).is_file()]
    for image_id in missing[:20]:
        problems.add(str(folder / "image_ids.txt"), f"image file not found: {root / image_id}")
    if len(missing) > 20:
        problems.add(str(folder / "image_ids.txt"), f"{len(missing)} image files not found")
    if len(problems.items) > before:
        return Split([], {}, {}, None)

    sizes, failed = measure_sizes(root, ids, workers)
    dropped = unreadable(failed, bad_images, problems, notes, f"OpenImages {name} images")
    if (folder / "image_sizes.txt").is_file():
        for where, (image_id, w, h) in _rows(folder / "image_sizes.txt", 3, problems):
            if image_id in sizes and (w, h) != tuple(map(str, sizes[image_id])):
                problems.add(where, f"says {w}x{h}, the image is "
                                    f"{sizes[image_id][0]}x{sizes[image_id][1]}")
    ids = [i for i in ids if i not in dropped]
    if name == "train":
        return Split(ids, {i: labels[i] for i in ids}, {i: sizes[i] for i in ids}, None)

    masks = _mask_lists(folder, ids, problems)
    if len(problems.items) > before:
        return Split([], {}, {}, None)
    boxes, resized = {}, 0
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        jobs = {i: pool.submit(_check_masks, i, masks[i][0], masks[i][1], sizes[i], mask_root)
                for i in ids}
        for image_id, job in jobs.items():
            image_boxes, issues, n = job.result()
            boxes[image_id] = image_boxes
            resized += n
            for where, message in issues:
                problems.add(where, message)
    if resized:
        notes.append(f"{name}: {resized} mask(s) differ in size from their image; they are "
                     f"resized (nearest neighbour) at evaluation")

    def moved(rel):  # mask paths are stored relative to the image root
        return rel if mask_root == root else rel_id(mask_root / rel, root)

    written = {i: ([moved(p) for p in masks[i][0]], masks[i][1] and moved(masks[i][1]))
               for i in ids}
    return Split(ids, {i: labels[i] for i in ids}, {i: sizes[i] for i in ids}, boxes, written)


def convert_openimages(root: str | os.PathLike, *, val_per_class: int = 0, val_from=None,
                       seed: int = 0, source_metadata=None, mask_root=None, workers: int = 16,
                       bad_images: str = "fail") -> Prepared:
    root = Path(root)
    source = _source_metadata(root, source_metadata)
    mask_root = Path(mask_root) if mask_root is not None else root
    problems = Problems()
    notes = ["boxes: one per instance mask (its tight box), derived here; the benchmark scores "
             "OpenImages by PxAP only"]
    splits = {}
    for name in SPLITS:
        if name == "val" and val_from is not None:
            continue
        splits[name] = _split(source, name, root, mask_root, problems, notes, workers, bad_images)
    problems.raise_if_any(f"OpenImages ({source}, images under {root})")

    if val_from is not None:
        val_from_folder(splits, read_val_from(val_from, root, NUM_CLASSES), notes, val_from)
    elif val_per_class:
        drawn = draw_per_class(splits["val"], val_per_class, seed, "the benchmark's val split",
                               keep_one=False)
        notes.append(f"val: {val_per_class} of the benchmark's val images per class (seed "
                     f"{seed}); its other {len(splits['val']) - len(drawn)} val images are unused")
        splits["val"] = splits["val"].subset(drawn)
    else:
        notes.append("val: the benchmark's val split (train-fullsup)")
    return Prepared("openimages", root, NUM_CLASSES,
                    {k: splits[k] for k in ("train", "val", "test")}, notes)
