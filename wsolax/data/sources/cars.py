"""Stanford Cars (Krause et al.) -> the metadata layout.

Reads, under `root`:
  cars_train/*.jpg, cars_test/*.jpg   (a doubly nested cars_train/cars_train/ is accepted)
and the annotations, either
  anno_train.csv, anno_test.csv       the widely used CSV exports: fname,x1,y1,x2,y2,class
                                      (class 1..196; a header line is skipped), or
  devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat (in root or devkit/)
                                      the original MATLAB files (struct arrays with bbox_x1,
                                      bbox_y1, bbox_x2, bbox_y2, class, fname); reading them needs
                                      scipy, which wsolax does not depend on.
The CSV files win when both are present. Boxes are used as given (x1, y1, x2, y2).

Splits: train = the official train images, test = the official test images; the benchmark of
Choe et al. has no Cars split, so val is drawn from train (N per class, seeded, removed from
train) unless --val-from gives one.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsolax.data.errors import DatasetError
from wsolax.data.sources.common import (
    Prepared, Problems, Split, check_box, draw_per_class, measure_sizes, read_val_from, rel_id,
    unreadable, val_from_folder)

NUM_CLASSES = 196
CSV_FILES = {"train": "anno_train.csv", "test": "anno_test.csv"}
MAT_FILES = {"train": "cars_train_annos.mat", "test": "cars_test_annos_withlabels.mat"}

Row = tuple[str, str, tuple[float, float, float, float], int]  # where, fname, box, class (1-based)


def _image_dir(root: Path, split: str) -> Path:
    folder = root / f"cars_{split}"
    nested = folder / f"cars_{split}"
    return nested if nested.is_dir() else folder


def _csv_rows(path: Path, problems: Problems) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            where = f"{path}:{lineno}"
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 6:
                problems.add(where, f"expected 6 fields fname,x1,y1,x2,y2,class, got {line!r}")
                continue
            try:
                box = tuple(float(v) for v in parts[1:5])
                label = int(parts[5])
            except ValueError:
                if lineno == 1:  # a header line such as 'fname,x1,y1,x2,y2,class'
                    continue
                problems.add(where, f"box and class must be numbers, got {line!r}")
                continue
            rows.append((where, parts[0], box, label))
    return rows


def _mat_rows(path: Path, problems: Problems) -> list[Row]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError(f"reading {path} needs scipy: `pip install scipy`, or provide the CSV "
                           f"exports anno_train.csv / anno_test.csv (fname,x1,y1,x2,y2,class)")
    try:
        annotations = loadmat(path, squeeze_me=True)["annotations"]
    except Exception as e:  # scipy raises several types for a bad file
        raise DatasetError(f"cannot read {path}: {e}") from e
    rows = []
    for k, entry in enumerate(annotations.ravel()):
        where = f"{path}[{k}]"
        try:
            box = tuple(float(entry[f"bbox_{c}"]) for c in ("x1", "y1", "x2", "y2"))
            rows.append((where, str(entry["fname"]), box, int(entry["class"])))
        except (ValueError, KeyError, IndexError) as e:
            problems.add(where, f"entry without bbox_x1..bbox_y2, class, fname ({e})")
    return rows


def _find(root: Path, name: str) -> Path | None:
    for folder in (root, root / "devkit"):
        if (folder / name).is_file():
            return folder / name
    return None


def _annotations(root: Path, problems: Problems) -> tuple[dict[str, list[Row]], str]:
    csvs = {s: _find(root, n) for s, n in CSV_FILES.items()}
    if all(csvs.values()):
        return {s: _csv_rows(p, problems) for s, p in csvs.items()}, "CSV"
    mats = {s: _find(root, n) for s, n in MAT_FILES.items()}
    if all(mats.values()):
        return {s: _mat_rows(p, problems) for s, p in mats.items()}, ".mat"
    raise DatasetError(
        f"no Stanford Cars annotations under {root}: need {' and '.join(CSV_FILES.values())} or "
        f"{' and '.join(MAT_FILES.values())} (in {root} or {root / 'devkit'})")


def convert_cars(root: str | os.PathLike, *, val_per_class: int = 5, val_from=None, seed: int = 0,
                 workers: int = 8, bad_images: str = "fail") -> Prepared:
    root = Path(root)
    problems = Problems()
    notes: list[str] = []
    rows, kind = _annotations(root, problems)
    splits, boxes = {}, {}
    for name in ("train", "test"):
        folder = _image_dir(root, name)
        ids, labels, first = [], {}, {}
        for where, fname, box, label in rows[name]:
            image_id = rel_id(folder / fname, root)
            if image_id in first:
                problems.add(where, f"{fname} annotated twice (first at {first[image_id]})")
            elif not (folder / fname).is_file():
                problems.add(where, f"image file not found: {folder / fname}")
            elif not 1 <= label <= NUM_CLASSES:
                problems.add(where, f"class {label} is out of range, must be 1..{NUM_CLASSES}")
            else:
                first[image_id] = where
                ids.append(image_id)
                labels[image_id] = label - 1
                boxes[image_id] = (where, box)
        if not rows[name]:
            problems.add(str(folder), f"no annotated {name} image")
        splits[name] = Split(ids, labels, {}, {})
    problems.raise_if_any(f"Stanford Cars under {root} ({kind} annotations)")

    for name, split in splits.items():
        sizes, failed = measure_sizes(root, split.image_ids, workers)
        dropped = unreadable(failed, bad_images, problems, notes, f"Cars {name} images")
        split.sizes = sizes
        for image_id in sizes:
            where, box = boxes[image_id]
            if check_box(box, sizes[image_id], f"{where} ({image_id})", problems):
                split.boxes[image_id] = [box]
        splits[name] = split.without(dropped)
    problems.raise_if_any(f"Stanford Cars under {root}")

    if val_from is not None:
        val_from_folder(splits, read_val_from(val_from, root, NUM_CLASSES), notes, val_from)
    else:
        drawn = draw_per_class(splits["train"], val_per_class, seed, "the Cars train set",
                               keep_one=True)
        splits["val"] = splits["train"].subset(drawn)
        splits["train"] = splits["train"].without(drawn)
        notes.append(f"val: {val_per_class} image(s) per class drawn from the official train set "
                     f"(seed {seed}) and removed from train (Stanford Cars has no val split)")
    found = max(label for split in splits.values() for label in split.labels.values()) + 1
    return Prepared("cars", root, found, {k: splits[k] for k in ("train", "val", "test")},
                    notes)
