"""CUB-200-2011 as distributed (Wah et al.) -> the metadata layout.

Reads, under `root` (the CUB_200_2011 folder):
  images/<class>/<name>.jpg
  images.txt              <image id> <path relative to images/>
  image_class_labels.txt  <image id> <class 1..200>
  train_test_split.txt    <image id> <1: train, 0: test>
  bounding_boxes.txt      <image id> <x> <y> <width> <height>   (floats)
and, if present, the separately released segmentations (`segmentations/<class>/<name>.png`,
beside `images/` or beside the CUB_200_2011 folder), which become masks.txt for PxAP.

Ids are paths relative to `images/`, as in the benchmark's own CUB metadata, so its val split
can be used with --val-from. Boxes become x0=x, y0=y, x1=x+width, y1=y+height, as the benchmark
stores them. Image sizes come from the image files.

Split convention (Choe et al. CVPR'20): train = the official train images, test = the official
test images, val = a small fully labelled split to choose the CAM threshold. The benchmark's val
is CUBV2, 5 images per class collected separately; without it (--val-from), val is drawn here from
the official *train* images (N per class, seeded) and removed from train. Never from test: the
threshold would then be chosen on test images.
"""

from __future__ import annotations

import decimal
import os
from pathlib import Path

from wsolax.data.sources.common import (
    Prepared, Problems, Split, check_box, draw_per_class, measure_sizes, read_val_from, unreadable,
    val_from_folder)

NUM_CLASSES = 200
FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")


def _table(path: Path, count: int, problems: Problems) -> list[tuple[str, int, list[str]]]:
    """(where, key, values) of `<key> <value> ...` lines; malformed lines become problems."""
    if not path.is_file():
        problems.add(str(path), "missing file")
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            # images.txt: the path is the rest of the line (maxsplit keeps spaces in it).
            parts = line.split(maxsplit=count - 1)
            if len(parts) != count:
                problems.add(where, f"expected {count} fields, got {line.strip()!r}")
                continue
            try:
                key = int(parts[0])
            except ValueError:
                problems.add(where, f"image id {parts[0]!r} is not an integer")
                continue
            rows.append((where, key, [p.strip() for p in parts[1:]]))
    return rows


def _by_key(rows, name: str, problems: Problems) -> dict[int, tuple[str, list[str]]]:
    out: dict[int, tuple[str, list[str]]] = {}
    for where, key, values in rows:
        if key in out:
            problems.add(where, f"duplicate image id {key} in {name} (first at {out[key][0]})")
            continue
        out[key] = (where, values)
    return out


def _segmentation_root(root: Path, segmentations) -> Path | None:
    """None: auto-detect; False: no masks; else the folder given."""
    if segmentations is False:
        return None
    if segmentations is not None:
        return Path(segmentations)
    for candidate in (root / "segmentations", root.parent / "segmentations"):
        if candidate.is_dir():
            return candidate
    return None


def convert_cub(root: str | os.PathLike, *, val_per_class: int = 5, val_from=None, seed: int = 0,
                segmentations=None, workers: int = 8, bad_images: str = "fail") -> Prepared:
    root = Path(root)
    image_root = root / "images"
    problems = Problems()
    notes: list[str] = []
    tables = {name: _by_key(_table(root / name, 2 if name != "bounding_boxes.txt" else 5,
                                   problems), name, problems)
              for name in FILES}
    problems.raise_if_any(f"the CUB annotation files under {root}")
    paths, classes, is_train, raw_boxes = (tables[name] for name in FILES)

    first_line: dict[str, str] = {}
    ids: dict[int, str] = {}
    for key, (where, (rel,)) in paths.items():
        rel = Path(rel).as_posix()
        if rel in first_line:
            problems.add(where, f"image {rel!r} listed twice (first at {first_line[rel]})")
        elif not (image_root / rel).is_file():
            problems.add(where, f"image file not found: {image_root / rel}")
        else:
            first_line[rel] = where
            ids[key] = rel

    labels: dict[str, int] = {}
    train, test = [], []
    boxes: dict[str, tuple[str, tuple[float, float, float, float]]] = {}
    for key, rel in ids.items():
        missing = [name for name, table in zip(FILES[1:], (classes, is_train, raw_boxes))
                   if key not in table]
        if missing:
            problems.add(paths[key][0], f"image id {key} has no line in {', '.join(missing)}")
            continue
        where, (text,) = classes[key]
        if not text.isdigit() or not 1 <= int(text) <= NUM_CLASSES:
            problems.add(where, f"class {text!r} is out of range, must be 1..{NUM_CLASSES}")
            continue
        labels[rel] = int(text) - 1
        where, (flag,) = is_train[key]
        if flag not in ("0", "1"):
            problems.add(where, f"is_training_image must be 0 or 1, got {flag!r}")
            continue
        (train if flag == "1" else test).append(rel)
        where, values = raw_boxes[key]
        try:
            x, y, w, h = (decimal.Decimal(v) for v in values)
            if not all(v.is_finite() for v in (x, y, w, h)):
                raise ValueError
        except (ValueError, decimal.InvalidOperation):
            problems.add(where, f"box values must be numbers, got {' '.join(values)!r}")
            continue
        if w < 0 or h < 0:
            problems.add(where, f"negative box width or height (w={w:g}, h={h:g})")
            continue
        # x + w in decimal: the float nearest the source's sum prints as the source's digits
        # (258.1, not 258.09999999999997 as 60.0 + 198.1 gives in binary).
        boxes[rel] = (where, tuple(float(v) for v in (x, y, x + w, y + h)))
    for name, members in (("train", train), ("test", test)):
        if not members and ids:
            problems.add(str(root / "train_test_split.txt"), f"no image is marked {name}")
    problems.raise_if_any(f"CUB under {root}")

    every = [i for i in ids.values() if i in boxes]
    sizes, failed = measure_sizes(image_root, every, workers)
    dropped = unreadable(failed, bad_images, problems, notes, "CUB images")
    for rel in every:
        if rel in sizes:
            where, box = boxes[rel]
            check_box(box, sizes[rel], f"{where} ({rel})", problems)
    problems.raise_if_any(f"CUB under {root}")

    seg_root = _segmentation_root(root, segmentations)
    masks = None
    if seg_root is not None:
        masks = {}
        for rel in test + train:
            mask = seg_root / Path(rel).with_suffix(".png")
            if mask.is_file():
                masks[rel] = ([Path(os.path.relpath(mask, image_root)).as_posix()], None)
        notes.append(f"masks: CUB segmentations from {seg_root} (masks.txt for PxAP)")

    def split(members: list[str], with_masks: bool) -> Split:
        members = [i for i in members if i not in dropped]
        return Split(members, {i: labels[i] for i in members}, {i: sizes[i] for i in members},
                     {i: [boxes[i][1]] for i in members},
                     {i: masks[i] for i in members if i in masks} if with_masks else None)

    splits = {"train": split(train, False), "test": split(test, masks is not None)}
    if masks is not None:
        lacking = [i for i in splits["test"].image_ids if i not in masks]
        for rel in lacking[:20]:
            problems.add(str(seg_root), f"no segmentation {Path(rel).with_suffix('.png')}")
        if lacking:
            problems.add(str(seg_root), f"{len(lacking)} test image(s) have no segmentation")
        problems.raise_if_any("the CUB segmentations")

    if val_from is not None:
        val_from_folder(splits, read_val_from(val_from, image_root, NUM_CLASSES), notes, val_from)
    else:
        drawn = draw_per_class(splits["train"], val_per_class, seed, "the CUB train set",
                               keep_one=True)
        splits["val"] = splits["train"].subset(drawn)
        if masks is not None and all(i in masks for i in drawn):
            splits["val"].masks = {i: masks[i] for i in drawn}
        splits["train"] = splits["train"].without(drawn)
        notes.append(
            f"val: {val_per_class} image(s) per class drawn from the official train set (seed "
            f"{seed}) and removed from train. The CVPR'20 benchmark's val is CUBV2 (separately "
            f"collected images); pass --val-from <its metadata> to use it.")
    # The class count found (a subset tree has fewer than 200), as the other converters do.
    found = max(labels.values()) + 1
    return Prepared("cub", image_root, found, {k: splits[k] for k in ("train", "val", "test")},
                    notes)
