"""Reading and validating a split in the wsolevaluation metadata layout.

Layout (Choe et al., CVPR'20), for each split under `<metadata_root>/<split>/`:

  image_ids.txt     one image id per line; the id is the image path relative
                    to the image root
  class_labels.txt  id,label
  image_sizes.txt   id,w,h
  localization.txt  id,x0,y0,x1,y1   one line per box, original pixel coords
  masks.txt         id,mask_path,ignore_path   optional, one line per instance
                    mask; ignore_path may be empty (OpenImages format)

Everything is validated eagerly, so a broken dataset fails at start-up with a
message naming the file, line and id, not hours into training.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np

from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_grey, decode_rgb

IMAGE_IDS_FILE = "image_ids.txt"
CLASS_LABELS_FILE = "class_labels.txt"
IMAGE_SIZES_FILE = "image_sizes.txt"
LOCALIZATION_FILE = "localization.txt"
MASKS_FILE = "masks.txt"

# Values of the mask returned by `load_mask`, as the evaluator expects them.
MASK_BACKGROUND = 0
MASK_FOREGROUND = 1
MASK_IGNORE = 255


@dataclasses.dataclass(frozen=True, eq=False)
class SplitMetadata:
    """Validated metadata of one split. Boxes are (k, 4) x0,y0,x1,y1 float64."""

    split: str
    image_root: Path
    image_ids: list[str]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]]  # (w, h) of the original image
    boxes: dict[str, np.ndarray]
    # id -> (instance mask paths, ignore mask path or None); None: no masks.txt.
    masks: dict[str, tuple[tuple[str, ...], str | None]] | None
    num_classes: int

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, image_id: str) -> Path:
        return self.image_root / image_id

    # Where pixels come from. These two are all a split stored elsewhere than in files overrides
    # (wsolax.data.tfds_source.TfdsSplit); every reader of images and masks goes through them.
    def image_reader(self, decoder: str = "cv2") -> ImageFiles:
        """Picklable: position in `image_ids` -> RGB uint8 array (`__call__`), -> name (`name`);
        `decoder` as wsolax.data.image_io says."""
        return ImageFiles(self, decoder)

    def read_masks(self, image_id: str) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The greyscale instance masks of `image_id` and its ignore mask (None: none)."""
        paths, ignore_path = self.masks[image_id]
        ignore = None if ignore_path is None else decode_grey(self.image_root / ignore_path)
        return [decode_grey(self.image_root / p) for p in paths], ignore

    @property
    def max_boxes(self) -> int:
        """Largest number of boxes of any image (the padding size for batches)."""
        return max(len(b) for b in self.boxes.values())


class ImageFiles:
    """Decodes a split's image files (the default image reader)."""

    def __init__(self, meta: SplitMetadata, decoder: str = "cv2"):
        self.paths = [str(meta.image_path(i)) for i in meta.image_ids]
        self.decoder = decoder

    def __call__(self, index: int) -> np.ndarray:
        return decode_rgb(self.paths[index], self.decoder)

    def name(self, index: int) -> str:
        return self.paths[index]


def size_problem(name: str, image: np.ndarray, size_wh: tuple[int, int]) -> str | None:
    """What is wrong if a decoded image is not the size image_sizes.txt lists (boxes are in
    those pixels, so scaling them by another size would silently corrupt localization)."""
    h, w = image.shape[:2]
    if (w, h) == tuple(size_wh):
        return None
    return (f"{name}: decoded size {w}x{h} differs from {IMAGE_SIZES_FILE}'s "
            f"{size_wh[0]}x{size_wh[1]}")


def _where(path: Path, lineno: int, image_id: str | None = None) -> str:
    where = f"{path}:{lineno}"
    return where if image_id is None else f"{where} (id {image_id!r})"


@contextlib.contextmanager
def _collect(problems: list[str] | None, failed: set[str] | None = None, named=()):
    """Without a `problems` list a failed check raises; with one it is recorded there and the
    rest of the `with` body (one line, or one table) is skipped, so validation can go on. The
    ids in `named` (the one a line names, once parsed) then join `failed`: such an image is
    left out, and not reported a second time as missing from the file."""
    if problems is None:
        yield
        return
    try:
        yield
    except DatasetError as e:
        problems.append(str(e))
        if failed is not None:
            failed.update(named)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-blank lines of a metadata file."""
    if not path.is_file():
        raise DatasetError(f"missing metadata file {path}")
    with open(path, encoding="utf-8") as f:
        lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(f, start=1)]
    return [(n, line) for n, line in lines if line.strip()]


def _fields(path: Path, lineno: int, line: str, count: int) -> list[str]:
    """Splits `id,f1,...,f{count-1}`; splitting from the right keeps commas in ids."""
    parts = line.rsplit(",", count - 1)
    if len(parts) != count or not parts[0]:
        raise DatasetError(
            f"{_where(path, lineno)}: expected {count} comma-separated fields, "
            f"got {line!r}")
    return [p.strip() for p in parts]


def _number(path: Path, lineno: int, image_id: str, text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise DatasetError(
            f"{_where(path, lineno, image_id)}: {text!r} is not a valid "
            f"{kind.__name__}") from None


def _check_known(path: Path, lineno: int, image_id: str, known: dict) -> None:
    if image_id not in known:
        raise DatasetError(
            f"{_where(path, lineno, image_id)}: id is not listed in "
            f"{IMAGE_IDS_FILE}")


def _read_image_ids(path: Path, problems: list[str] | None = None) -> list[str]:
    first_line: dict[str, int] = {}
    for lineno, line in _read_lines(path):
        image_id = line.strip()
        with _collect(problems):  # collecting: the repeat is reported, the first line kept
            if image_id in first_line:
                raise DatasetError(
                    f"{_where(path, lineno, image_id)}: duplicate id (first on line "
                    f"{first_line[image_id]})")
            first_line[image_id] = lineno
    if not first_line:
        raise DatasetError(f"{path}: empty split (no image ids)")
    return list(first_line)


def _read_labels(path: Path, known: dict, num_classes: int | None,
                 problems: list[str] | None = None, failed: set[str] | None = None,
                 ) -> dict[str, int]:
    labels: dict[str, int] = {}
    for lineno, line in _read_lines(path):
        named: list[str] = []
        with _collect(problems, failed, named):
            image_id, label = _fields(path, lineno, line, 2)
            named.append(image_id)
            _check_known(path, lineno, image_id, known)
            if image_id in labels:
                raise DatasetError(f"{_where(path, lineno, image_id)}: duplicate label")
            label = _number(path, lineno, image_id, label, int)
            if label < 0 or (num_classes is not None and label >= num_classes):
                valid = f"in [0, {num_classes})" if num_classes is not None else ">= 0"
                raise DatasetError(
                    f"{_where(path, lineno, image_id)}: label {label} is out of "
                    f"range, must be {valid}")
            labels[image_id] = label
    return labels


def _read_sizes(path: Path, known: dict, problems: list[str] | None = None,
                failed: set[str] | None = None) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    for lineno, line in _read_lines(path):
        named: list[str] = []
        with _collect(problems, failed, named):
            image_id, w, h = _fields(path, lineno, line, 3)
            named.append(image_id)
            _check_known(path, lineno, image_id, known)
            if image_id in sizes:
                raise DatasetError(f"{_where(path, lineno, image_id)}: duplicate size")
            w, h = (_number(path, lineno, image_id, v, int) for v in (w, h))
            if w <= 0 or h <= 0:
                raise DatasetError(
                    f"{_where(path, lineno, image_id)}: image size must be positive, "
                    f"got w={w}, h={h}")
            sizes[image_id] = (w, h)
    return sizes


def _read_boxes(path: Path, sizes: dict[str, tuple[int, int]],
                problems: list[str] | None = None, failed: set[str] | None = None,
                ) -> dict[str, np.ndarray]:
    boxes: dict[str, list[list[float]]] = {}
    for lineno, line in _read_lines(path):
        named: list[str] = []
        # An image keeping only some of its boxes would be scored against the wrong ground
        # truth: a bad box line puts its image in `failed`, which leaves the image out.
        with _collect(problems, failed, named):
            image_id, *coords = _fields(path, lineno, line, 5)
            named.append(image_id)
            _check_known(path, lineno, image_id, sizes)
            x0, y0, x1, y1 = (_number(path, lineno, image_id, c) for c in coords)
            if not all(np.isfinite((x0, y0, x1, y1))):
                raise DatasetError(f"{_where(path, lineno, image_id)}: non-finite box")
            if x1 < x0 or y1 < y0:
                raise DatasetError(
                    f"{_where(path, lineno, image_id)}: inverted box "
                    f"({x0}, {y0}, {x1}, {y1}) needs x0 <= x1 and y0 <= y1")
            w, h = sizes[image_id]
            # Boxes may touch the far edge (x1 == w): several benchmark sets store
            # x1 = x0 + width, so an exclusive right edge must be accepted.
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise DatasetError(
                    f"{_where(path, lineno, image_id)}: box ({x0}, {y0}, {x1}, {y1}) "
                    f"lies outside the {w}x{h} image")
            boxes.setdefault(image_id, []).append([x0, y0, x1, y1])
    return {k: np.asarray(v, dtype=np.float64) for k, v in boxes.items()}


def _read_masks(path: Path, known: dict, problems: list[str] | None = None,
                failed: set[str] | None = None,
                ) -> dict[str, tuple[tuple[str, ...], str | None]]:
    instances: dict[str, list[str]] = {}
    ignores: dict[str, str | None] = {}
    for lineno, line in _read_lines(path):
        named: list[str] = []
        with _collect(problems, failed, named):
            # Three path fields: commas inside paths would be ambiguous, so forbid them.
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 3 or not parts[0] or not parts[1]:
                raise DatasetError(
                    f"{_where(path, lineno)}: expected 'id,mask_path,ignore_path' "
                    f"(ignore_path may be empty), got {line!r}")
            image_id, mask_path, ignore_path = parts
            named.append(image_id)
            _check_known(path, lineno, image_id, known)
            ignore = ignore_path or None
            if image_id in ignores and ignores[image_id] != ignore:
                raise DatasetError(
                    f"{_where(path, lineno, image_id)}: ignore mask {ignore!r} differs "
                    f"from the earlier line's {ignores[image_id]!r}")
            instances.setdefault(image_id, []).append(mask_path)
            ignores[image_id] = ignore
    return {k: (tuple(v), ignores[k]) for k, v in instances.items()}


def _require_all(path: Path, image_ids: list[str], table: dict,
                 problems: list[str] | None = None) -> None:
    missing = [i for i in image_ids if i not in table]
    if missing:
        with _collect(problems):
            raise DatasetError(
                f"{path}: {len(missing)} image id(s) have no entry, e.g. "
                f"{missing[0]!r}")


def _check_files_exist(image_root: Path, what: str, listed_in: Path, rel_paths,
                       problems: list[str] | None = None) -> set[str]:
    missing = [p for p in rel_paths if not (image_root / p).is_file()]
    if missing:
        shown = ", ".join(str(image_root / p) for p in missing[:3])
        with _collect(problems):
            raise DatasetError(
                f"{len(missing)} {what} file(s) listed in {listed_in} are missing "
                f"under {image_root}, e.g. {shown}")
    return set(missing)


def load_split(
    metadata_root: str | os.PathLike,
    image_root: str | os.PathLike,
    split: str,
    num_classes: int | None = None,
    check_files: bool = True,
    boxes_optional: bool = False,
    problems: list[str] | None = None,
) -> SplitMetadata:
    """Reads and validates `<metadata_root>/<split>/`; raises DatasetError.

    `num_classes` None infers it as max label + 1. `check_files` verifies that
    every listed image (and mask) exists; decoding is left to `verify_images`.
    `boxes_optional`: localization.txt may be absent (a training split with image
    labels only, e.g. ILSVRC train); its images then have no boxes.
    `problems`: a list that collects every failed check instead of raising at the
    first; images with a problem are left out of the result. A missing folder or
    metadata file, and a split left with no image, still raise.
    """
    folder = Path(metadata_root) / split
    if not folder.is_dir():
        raise DatasetError(f"metadata folder for split {split!r} not found: {folder}")
    image_root = Path(image_root)

    image_ids = _read_image_ids(folder / IMAGE_IDS_FILE, problems)
    known = dict.fromkeys(image_ids)
    failed: set[str] = set()  # ids named by a line that failed a check (collecting mode)

    def unreported():  # ids whose missing entry is news (always all of them when raising)
        return [i for i in image_ids if i not in failed]

    labels = _read_labels(folder / CLASS_LABELS_FILE, known, num_classes, problems, failed)
    sizes = _read_sizes(folder / IMAGE_SIZES_FILE, known, problems, failed)
    _require_all(folder / CLASS_LABELS_FILE, unreported(), labels, problems)
    _require_all(folder / IMAGE_SIZES_FILE, unreported(), sizes, problems)
    if boxes_optional and not (folder / LOCALIZATION_FILE).exists():
        boxes = {i: np.zeros((0, 4), np.float64) for i in image_ids}
    else:
        boxes = _read_boxes(folder / LOCALIZATION_FILE, sizes, problems, failed)
        # Without `problems` every size was read, so a missing box is reported here and not
        # hidden behind a size error; with it, images without a size were already reported.
        _require_all(folder / LOCALIZATION_FILE, [i for i in unreported() if i in sizes], boxes,
                     problems)
    masks = None
    if (folder / MASKS_FILE).exists():
        masks = _read_masks(folder / MASKS_FILE, known, problems, failed)
        _require_all(folder / MASKS_FILE, unreported(), masks, problems)

    missing: set[str] = set()
    if check_files:
        missing = _check_files_exist(image_root, "image", folder / IMAGE_IDS_FILE, image_ids,
                                     problems)
        if masks is not None:
            mask_files = {p for paths, ignore in masks.values()
                          for p in (*paths, *([ignore] if ignore else []))}
            gone = _check_files_exist(image_root, "mask", folder / MASKS_FILE,
                                      sorted(mask_files), problems)
            missing |= {i for i, (paths, ignore) in masks.items()
                        if gone.intersection((*paths, ignore))}
    if problems is not None:
        image_ids = [i for i in image_ids if i in labels and i in sizes and i in boxes
                     and (masks is None or i in masks) and i not in missing | failed]
        if not image_ids:
            raise DatasetError(f"{folder}: no image of split {split!r} passes the checks")
        keep = set(image_ids)
        labels, sizes, boxes = ({k: v for k, v in t.items() if k in keep}
                                for t in (labels, sizes, boxes))
        if masks is not None:
            masks = {k: v for k, v in masks.items() if k in keep}
    if num_classes is None:
        num_classes = max(labels.values()) + 1

    return SplitMetadata(
        split=split, image_root=image_root, image_ids=image_ids, labels=labels,
        sizes=sizes, boxes=boxes, masks=masks, num_classes=num_classes)


def drop_images(meta: SplitMetadata, image_ids) -> SplitMetadata:
    """`meta` without `image_ids` (e.g. the undecodable ones); raises if none would be left."""
    drop = set(image_ids)
    keep = [i for i in meta.image_ids if i not in drop]
    if not keep:
        raise DatasetError(f"split {meta.split!r}: no image left after dropping {len(drop)}")

    def kept(table):
        return None if table is None else {k: v for k, v in table.items() if k not in drop}

    return dataclasses.replace(meta, image_ids=keep, labels=kept(meta.labels),
                               sizes=kept(meta.sizes), boxes=kept(meta.boxes),
                               masks=kept(meta.masks))


def find_bad_images(meta: SplitMetadata, num_threads: int = 8,
                    decoder: str = "cv2") -> dict[str, str]:
    """Decodes every image of the split with `decoder` (the one training will use); bad image
    id -> what is wrong with it.

    An image is bad if it does not decode or its size disagrees with
    image_sizes.txt (boxes would then be scaled wrongly). Empty: all good.
    """
    reader = meta.image_reader(decoder)

    def check(index: int) -> str | None:
        try:
            image = reader(index)
        except DatasetError as e:
            return str(e)
        return size_problem(reader.name(index), image, meta.sizes[meta.image_ids[index]])

    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        results = pool.map(check, range(len(meta)))
        return {i: r for i, r in zip(meta.image_ids, results) if r is not None}


def verify_images(meta: SplitMetadata, num_threads: int = 8) -> list[str]:
    """`find_bad_images` as a list of messages, one per bad image; empty: all good."""
    return list(find_bad_images(meta, num_threads).values())


def load_mask(meta: SplitMetadata, image_id: str, out_hw: tuple[int, int]) -> np.ndarray:
    """Evaluation mask of `image_id` at size `out_hw`: uint8, 1 fg, 0 bg, 255 ignore.

    Instance masks are OR-ed (any value > 127 is foreground); ignore pixels are
    those of the ignore mask that are not foreground. Every mask is resized on
    its own with nearest neighbour so instance masks of differing sizes work.
    """
    if meta.masks is None:
        raise DatasetError(f"split {meta.split!r} has no {MASKS_FILE}")
    instances, ignore = meta.read_masks(image_id)
    size_wh = (out_hw[1], out_hw[0])

    def resized(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask, size_wh, interpolation=cv2.INTER_NEAREST) > 127

    foreground = np.logical_or.reduce([resized(m) for m in instances])
    out = foreground.astype(np.uint8) * MASK_FOREGROUND
    if ignore is not None:
        out[resized(ignore) & ~foreground] = MASK_IGNORE
    return out
