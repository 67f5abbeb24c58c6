"""Check a config's dataset before training: what each split holds and everything wrong with it.

The checks are the metadata reader's (wsolax.data.metadata), run in its collecting mode so that
every problem is reported, not only the first; on top of them: images shared between splits,
images with more boxes than `data.max_boxes` (the pipeline would refuse them), and with `decode`,
every image and mask decoded once (corrupt files, sizes that disagree with image_sizes.txt).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
from pathlib import Path

import ml_collections
import numpy as np
from PIL import Image

from wsolax.data import metadata as md
from wsolax.data.image_io import decode_grey
from wsolax.data.transforms import DECODER_OF

# First matching pattern names the kind of a reader's problem message (its wording).
KINDS = (
    ("missing file", r"missing metadata file|are missing under|not found"),
    ("empty split", r"empty split|no image of split|passes the checks"),
    ("duplicate id", r"duplicate"),
    ("id not in image_ids.txt", r"is not listed in"),
    ("id missing from a file", r"have no entry"),
    ("malformed line", r"comma-separated fields|is not a valid|expected 'id,mask_path"),
    ("label out of range", r"out of range"),
    ("inverted box", r"inverted box"),
    ("box outside image", r"outside the"),
    ("non-finite box", r"non-finite box"),
    ("bad image size", r"image size must be positive"),
    ("size mismatch", r"decoded size"),
    ("undecodable image", r"corrupt or unreadable|cannot read file"),
    ("conflicting ignore masks", r"ignore mask .* differs"),
)


def kind_of(message: str) -> str:
    # Quoted ids and values are the user's text: 'duplicate.jpg' must not read as a duplicate.
    text = re.sub(r"'[^']*'", "''", message)
    for kind, pattern in KINDS:
        if re.search(pattern, text):
            return kind
    return "other"


@dataclasses.dataclass
class SplitReport:
    split: str
    images: int = 0
    classes_present: int = 0
    num_classes: int = 0
    boxes_per_image: tuple[int, float, int] | None = None  # min, mean, max; None: no boxes
    images_with_masks: int | None = None  # None: no masks.txt
    problems: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, message: str, kind: str | None = None) -> None:
        self.problems.setdefault(kind or kind_of(message), []).append(message)


def _check_masks(meta: md.SplitMetadata, num_threads: int) -> list[str]:
    """Every mask file decodes; a size other than the image's is fine (resized at evaluation)."""
    def one(image_id):
        paths, ignore = meta.masks[image_id]
        out = []
        for rel in (*paths, *([ignore] if ignore else [])):
            try:
                decode_grey(meta.image_root / rel)
            except md.DatasetError as e:
                out.append(f"mask of {image_id}: {e}")
        return out

    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
        return [m for messages in pool.map(one, list(meta.masks)) for m in messages]


_BOX_OUTSIDE = re.compile(r"\(id '(?P<id>.+)'\): box .* lies outside the (?P<w>\d+)x(?P<h>\d+) image$")


def _header_size(path) -> tuple[int, int] | None:
    """(w, h) from the image file's header (no decoding), or None if it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None


def _size_mismatch_instead(message: str, image_root) -> tuple[str, str] | None:
    """A box 'outside the image' whose file has another size than image_sizes.txt says: the size
    is what is wrong (or both are), so that is reported."""
    match = _BOX_OUTSIDE.search(message)
    if not match:
        return None
    listed = (int(match["w"]), int(match["h"]))
    actual = _header_size(Path(image_root) / match["id"])
    if actual is None or actual == listed:
        return None
    return (f"{match['id']}: image_sizes.txt says {listed[0]}x{listed[1]} but the file is "
            f"{actual[0]}x{actual[1]} (its box was checked against the listed size: {message})",
            "size mismatch")


def validate_split(data_cfg: ml_collections.ConfigDict, split: str, metadata_root, image_root,
                   decode: bool = False) -> tuple[SplitReport, md.SplitMetadata | None]:
    report = SplitReport(split, num_classes=data_cfg.num_classes)
    collected: list[str] = []
    try:
        meta = md.load_split(metadata_root, image_root, split, num_classes=data_cfg.num_classes,
                             boxes_optional=split == data_cfg.train_split, problems=collected)
    except md.DatasetError as e:
        collected.append(str(e))
        meta = None
    for message in collected:
        report.add(*(_size_mismatch_instead(message, image_root) or (message,)))
    if meta is None:
        return report, None

    report.images = len(meta)
    report.classes_present = len(set(meta.labels.values()))
    counts = np.array([len(meta.boxes[i]) for i in meta.image_ids])
    if counts.max() > 0:
        report.boxes_per_image = (int(counts.min()), float(counts.mean()), int(counts.max()))
    if meta.max_boxes > data_cfg.max_boxes:
        worst = meta.image_ids[int(counts.argmax())]
        report.add(f"{worst} has {meta.max_boxes} boxes but data.max_boxes is "
                   f"{data_cfg.max_boxes}: set --config.data.max_boxes={meta.max_boxes}",
                   "too many boxes for data.max_boxes")
    if meta.masks is not None:
        report.images_with_masks = len(meta.masks)
    if split == data_cfg.train_split and report.classes_present < data_cfg.num_classes:
        report.notes.append(f"{data_cfg.num_classes - report.classes_present} of "
                            f"{data_cfg.num_classes} classes have no training image")

    if decode:
        threads = max(1, data_cfg.num_threads)
        bad = md.find_bad_images(meta, num_threads=threads, decoder=DECODER_OF[data_cfg.resize])
        if bad and split == data_cfg.train_split and data_cfg.bad_images == "skip":
            report.notes.append(f"data.bad_images='skip': training will drop {len(bad)} bad "
                                f"image(s), e.g. {next(iter(bad.values()))}")
        else:
            for message in bad.values():
                report.add(message)
        if meta.masks is not None:
            for message in _check_masks(meta, threads):
                report.add(message, "unreadable mask")
    return report, meta


def validate(data_cfg: ml_collections.ConfigDict, metadata_root, image_root, splits,
             decode: bool = False) -> list[SplitReport]:
    """One report per split of the dataset in the metadata layout under the two roots."""
    reports, seen = [], {}
    for split in splits:
        report, meta = validate_split(data_cfg, split, metadata_root, image_root, decode)
        if meta is not None:
            # The same image in two splits: e.g. test images leaking into training or into
            # the threshold choice.
            for other, ids in seen.items():
                shared = sorted(ids.intersection(meta.image_ids))
                if shared:
                    report.add(f"{len(shared)} image(s) of split {split!r} are also in split "
                               f"{other!r}, e.g. {shared[0]}", "image in two splits")
            seen[split] = set(meta.image_ids)
        reports.append(report)
    return reports


def has_problems(reports: list[SplitReport]) -> bool:
    return any(r.problems for r in reports)


def format_reports(reports: list[SplitReport], examples: int = 3) -> str:
    lines = []
    for r in reports:
        usable = " (those without a problem)" if r.problems else ""
        lines.append(f"split {r.split!r}: {r.images} images{usable}, {r.classes_present} of "
                     f"{r.num_classes} classes present")
        if r.boxes_per_image is None:
            lines.append("  boxes per image: none")
        else:
            lo, mean, hi = r.boxes_per_image
            lines.append(f"  boxes per image: min {lo}, mean {mean:.2f}, max {hi}")
        lines.append("  masks: " + ("none" if r.images_with_masks is None
                                    else f"for {r.images_with_masks} images"))
        lines += [f"  note: {n}" for n in r.notes]
        for kind, messages in r.problems.items():
            lines.append(f"  PROBLEM {kind}: {len(messages)}")
            lines += [f"    {m}" for m in messages[:examples]]
            if len(messages) > examples:
                lines.append(f"    ... and {len(messages) - examples} more")
    total = sum(len(m) for r in reports for m in r.problems.values())
    lines.append(f"{total} problem(s) found" if total else "no problems found")
    return "\n".join(lines)
