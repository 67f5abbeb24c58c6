"""What every converter shares: the split records it builds, the problem collector, image sizes
read from file headers, the seeded per-class draw of the val split, and the metadata writer.

Converters never copy or modify images: they list them (ids are paths relative to the image root
the user points at) and write the text files of the wsolevaluation layout.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from wsolax.data import metadata as md
from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_rgb

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BAD_IMAGE_POLICIES = ("fail", "skip")

Box = tuple[float, float, float, float]


@dataclasses.dataclass
class Split:
    """One split as a converter builds it. `boxes` None: the split has no box annotation (a
    training split with image labels only), so no localization.txt is written."""

    image_ids: list[str]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]]
    boxes: dict[str, list[Box]] | None
    masks: dict[str, tuple[list[str], str | None]] | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, image_ids) -> Split:
        keep = set(image_ids)
        ids = [i for i in self.image_ids if i in keep]

        def part(table):
            return None if table is None else {i: table[i] for i in ids if i in table}

        return Split(ids, part(self.labels), part(self.sizes), part(self.boxes), part(self.masks))

    def without(self, image_ids) -> Split:
        drop = set(image_ids)
        return self.subset(i for i in self.image_ids if i not in drop)


@dataclasses.dataclass
class Prepared:
    """A converted dataset, ready to be written by `write_prepared`."""

    dataset: str
    image_root: Path
    num_classes: int
    splits: dict[str, Split]
    # How val was made and anything that differs from the benchmark: printed and kept in
    # prepare.json, so a result can always be traced to its split.
    notes: list[str] = dataclasses.field(default_factory=list)


class Problems:
    """Collects what is wrong in the user's files, so they learn everything in one run."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, what: str, shown: int = 20) -> None:
        if not self.items:
            return
        lines = "\n  ".join(self.items[:shown])
        more = f"\n  ... and {len(self.items) - shown} more" if len(self.items) > shown else ""
        raise DatasetError(f"{len(self.items)} problem(s) in {what}; nothing was written:\n  "
                           f"{lines}{more}")


def rel_id(path: Path, image_root: Path) -> str:
    """The image id of `path`: its path relative to the image root, with forward slashes."""
    return Path(os.path.relpath(path, image_root)).as_posix()


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (case-insensitive suffixes: ILSVRC
    uses .JPEG)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def number_text(value: float) -> str:
    """Shortest exact text of a coordinate: 10.0 -> '10', 10.5 -> '10.5'."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def check_box(box: Box, size: tuple[int, int], where: str, problems: Problems) -> bool:
    """The metadata reader's box rules, checked where the box came from (file and line)."""
    x0, y0, x1, y1 = box
    if not all(np.isfinite(box)):
        problems.add(where, f"non-finite box {box}")
        return False
    if x1 < x0 or y1 < y0:
        problems.add(where, f"inverted box ({number_text(x0)}, {number_text(y0)}, "
                            f"{number_text(x1)}, {number_text(y1)}) needs x0 <= x1 and y0 <= y1")
        return False
    w, h = size
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        problems.add(where, f"box ({number_text(x0)}, {number_text(y0)}, {number_text(x1)}, "
                            f"{number_text(y1)}) lies outside the {w}x{h} image")
        return False
    return True


def image_size(path: Path) -> tuple[int, int]:
    """(w, h) from the file header; a full decode only when Pillow can't parse the header."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # Pillow raises many types for bad data; OpenCV gets a second chance.
        h, w = decode_rgb(path).shape[:2]
        return w, h


def measure_sizes(image_root: Path, image_ids: list[str], workers: int = 8,
                  ) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Sizes of the listed images and, separately, the ids that could not be read (with why)."""
    def one(image_id):
        try:
            return image_size(image_root / image_id), None
        except (DatasetError, OSError) as e:
            return None, str(e)

    sizes, failed = {}, {}
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        for image_id, (size, error) in zip(image_ids, pool.map(one, image_ids, chunksize=64)):
            if error is None:
                sizes[image_id] = size
            else:
                failed[image_id] = error
    return sizes, failed


def unreadable(failed: dict[str, str], policy: str, problems: Problems, notes: list[str],
               what: str) -> set[str]:
    """Applies --bad-images to images whose header could not be read: the ids to drop."""
    if not failed:
        return set()
    if policy == "skip":
        notes.append(f"{what}: skipped {len(failed)} unreadable image(s) (--bad-images skip), "
                     f"e.g. {next(iter(failed.values()))}")
        return set(failed)
    for message in failed.values():
        problems.add(what, f"unreadable image ({message})")
    return set()


def draw_per_class(split: Split, per_class: int, seed: int, source: str,
                   keep_one: bool) -> list[str]:
    """`per_class` ids of every class of `split`, drawn with a seeded generator.

    Deterministic for a given seed and set of ids: classes and their ids are visited in sorted
    order, whatever order the source lists them in. `keep_one`: a class must keep at least one
    image in `split` (drawing from the training set must not remove a class from it).
    """
    if per_class < 1:
        raise DatasetError(f"--val-per-class must be >= 1, got {per_class}")
    by_class: dict[int, list[str]] = {}
    for image_id in split.image_ids:
        by_class.setdefault(split.labels[image_id], []).append(image_id)
    rng = np.random.default_rng(seed)
    drawn: set[str] = set()
    for label in sorted(by_class):
        members = sorted(by_class[label])
        needed = per_class + (1 if keep_one else 0)
        if len(members) < needed:
            raise DatasetError(
                f"class {label} has {len(members)} image(s) in {source}: too few to draw "
                f"{per_class} for val" + (" and keep one for training" if keep_one else "")
                + "; lower --val-per-class or pass --val-from")
        drawn.update(members[i] for i in rng.choice(len(members), per_class, replace=False))
    return [i for i in split.image_ids if i in drawn]


def split_from_metadata(meta: md.SplitMetadata) -> Split:
    boxes = {i: [tuple(float(v) for v in b) for b in meta.boxes[i]] for i in meta.image_ids}
    masks = None
    if meta.masks is not None:
        masks = {i: (list(paths), ignore) for i, (paths, ignore) in meta.masks.items()}
    return Split(list(meta.image_ids), dict(meta.labels), dict(meta.sizes), boxes, masks)


def read_val_from(folder: str | os.PathLike, image_root: Path, num_classes: int) -> Split:
    """A val split already in the metadata layout (e.g. the benchmark's own CUBV2 / ImageNetV2
    metadata): `folder` is the split folder itself or a metadata root holding `val/`. Its ids
    must be relative to the same image root, and its labels use the same class numbering."""
    folder = Path(folder)
    if (folder / md.IMAGE_IDS_FILE).is_file():
        root, split = folder.parent, folder.name
    elif (folder / "val" / md.IMAGE_IDS_FILE).is_file():
        root, split = folder, "val"
    else:
        raise DatasetError(f"--val-from {folder}: neither it nor {folder / 'val'} holds "
                           f"{md.IMAGE_IDS_FILE}")
    return split_from_metadata(md.load_split(root, image_root, split, num_classes=num_classes))


def val_from_folder(prepared_splits: dict[str, Split], val: Split, notes: list[str],
                    folder) -> None:
    """Installs a --val-from split: an image shared with test would leak test supervision into
    the threshold choice, so it is refused; one shared with train leaves train."""
    shared = set(val.image_ids) & set(prepared_splits["test"].image_ids)
    if shared:
        raise DatasetError(f"--val-from {folder}: {len(shared)} image(s) are also in test, e.g. "
                           f"{sorted(shared)[0]!r}; val and test must not overlap")
    overlap = set(val.image_ids) & set(prepared_splits["train"].image_ids)
    if overlap:
        prepared_splits["train"] = prepared_splits["train"].without(overlap)
        notes.append(f"val: {len(overlap)} image(s) of --val-from were removed from train")
    prepared_splits["val"] = val
    notes.append(f"val: {len(val)} image(s) read from {folder} (--val-from)")


def _write_lines(path: Path, lines) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def _write_split(folder: Path, split: Split) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write_lines(folder / md.IMAGE_IDS_FILE, split.image_ids)
    _write_lines(folder / md.CLASS_LABELS_FILE,
                 (f"{i},{split.labels[i]}" for i in split.image_ids))
    _write_lines(folder / md.IMAGE_SIZES_FILE,
                 (f"{i},{split.sizes[i][0]},{split.sizes[i][1]}" for i in split.image_ids))
    # Stale files from an earlier run (--force) would otherwise be read with the new ids.
    for name, present in ((md.LOCALIZATION_FILE, split.boxes is not None),
                          (md.MASKS_FILE, split.masks is not None)):
        if not present:
            (folder / name).unlink(missing_ok=True)
    if split.boxes is not None:
        _write_lines(folder / md.LOCALIZATION_FILE,
                     (f"{i}," + ",".join(number_text(v) for v in box)
                      for i in split.image_ids for box in split.boxes[i]))
    if split.masks is not None:
        _write_lines(folder / md.MASKS_FILE,
                     (f"{i},{path},{split.masks[i][1] or ''}"
                      for i in split.image_ids for path in split.masks[i][0]))


def write_prepared(prepared: Prepared, out: str | os.PathLike, force: bool = False,
                   extra_info: dict | None = None) -> Path:
    """Writes `<out>/<split>/*.txt` and `<out>/prepare.json`, then reads every split back with
    the metadata reader (the same checks training runs), so a written folder is a valid one."""
    out = Path(out)
    existing = [out / s for s in SPLITS if (out / s / md.IMAGE_IDS_FILE).exists()]
    if existing and not force:
        raise DatasetError(f"{out} already holds metadata ({', '.join(map(str, existing))}); "
                           f"pass --force to overwrite it")
    for name, split in prepared.splits.items():
        if not split.image_ids:
            raise DatasetError(f"split {name!r} of {prepared.dataset} has no images")
    for name, split in prepared.splits.items():
        _write_split(out / name, split)
    info = {"dataset": prepared.dataset, "image_root": str(prepared.image_root),
            "num_classes": prepared.num_classes,
            "splits": {k: len(v) for k, v in prepared.splits.items()},
            "notes": prepared.notes, **(extra_info or {})}
    (out / "prepare.json").write_text(json.dumps(info, indent=2) + "\n")
    for name, split in prepared.splits.items():
        md.load_split(out, prepared.image_root, name, num_classes=prepared.num_classes,
                      check_files=False, boxes_optional=split.boxes is None)
    return out
