"""The embedded generated WSOL dataset: writing it to disk, and its CLI.

Each image holds one object whose class is given away by a small, always
visible part (a saturated disc near one end, a few % of the object) while
the rest of the object carries only a weak class cue. A plain CAM classifier
therefore gets high accuracy from the part, and its CAM under-covers the
object: the failure mode WSOL methods set out to fix. See synth_spec.py for
the knobs and synth_render.py for the drawing.

Written layout under `root` (the image root; ids are relative to it):

  images/<split>/<i>.png    RGB images
  masks/<split>/<i>.png     object masks, 0/255
  metadata/<split>/         wsolevaluation metadata (image_ids, class_labels,
                            image_sizes, localization, masks) plus extras for
                            analysis: part_localization.txt (part boxes, same
                            format), part_masks.npy (all part masks of the
                            split, bit-packed; see load_part_masks) and
                            attributes.txt (id,part_side,body_texture_class,
                            part_class)
  spec.json                 stamp written last: the set is complete

Usage: python -m wsolax.data.synthetic --root data/synthetic [--num-train N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from wsolax.data.errors import DatasetError
from wsolax.data.metadata import SplitMetadata, load_split
from wsolax.data.preview import save_preview_grid
from wsolax.data.synth_objects import render_whole_object
from wsolax.data.synth_render import render_example, split_labels
from wsolax.data.synth_spec import SPLITS, SyntheticSpec

__all__ = ["SyntheticSpec", "write_synthetic_dataset", "load_synthetic_split",
           "load_part_masks", "read_spec", "main"]

# Bump whenever the drawing changes, so stale cached sets are regenerated.
GENERATOR_VERSION = 1
STAMP_FILE = "spec.json"
PART_MASKS_FILE = "part_masks.npy"
_GENERATOR_NAME = "wsolax.data.synthetic"
_CHUNK = 250  # images per worker task
RENDERERS = {"part_body": render_example, "whole_objects": render_whole_object}


def _stamp(spec: SyntheticSpec) -> dict:
    return {"generator": _GENERATOR_NAME, "version": GENERATOR_VERSION,
            "spec": spec.to_json_dict()}


def _read_stamp(root: Path) -> dict | None:
    """The generator's stamp in `root`, or None if there is none (a missing,
    unreadable or foreign spec.json: then the folder is not ours)."""
    try:
        stamp = json.loads((root / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    is_ours = isinstance(stamp, dict) and stamp.get("generator") == _GENERATOR_NAME
    return stamp if is_ours else None


def _write_png(path: Path, rgb_or_grey: np.ndarray) -> None:
    image = rgb_or_grey if rgb_or_grey.ndim == 2 else rgb_or_grey[..., ::-1]
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def _file_name(index: int) -> str:
    return f"{index:06d}.png"


def _init_worker() -> None:
    # The processes already use every core; OpenCV's own thread pool would
    # only add contention (measured: more system time, no speed-up).
    cv2.setNumThreads(1)


def _render_chunk(out: str, spec: SyntheticSpec, split: str, indices, labels) -> list[dict]:
    """Renders and writes some images of a split; returns their metadata rows."""
    out = Path(out)
    rows = []
    for index, label in zip(indices, labels):
        ex = RENDERERS[spec.kind](spec, split, index, int(label))
        name = _file_name(index)
        _write_png(out / "images" / split / name, ex.image)
        _write_png(out / "masks" / split / name, ex.mask.astype(np.uint8) * 255)
        rows.append(dict(
            index=index, label=ex.label, box=ex.box, part_box=ex.part_box,
            part_side="left" if ex.part_on_left else "right",
            body_texture_class=ex.body_texture_class, part_class=ex.part_class,
            # Part masks go to one file per split: a PNG each would cost a
            # third of the generation time in file-system overhead.
            part_mask=np.packbits(ex.part_mask, axis=-1)))
    return rows


def _write_metadata(folder: Path, spec: SyntheticSpec, split: str, rows: list[dict]) -> None:
    h, w = spec.hw
    lines: dict[str, list[str]] = {name: [] for name in (
        "image_ids", "class_labels", "image_sizes", "localization", "masks",
        "part_localization", "attributes")}
    for r in rows:
        name = _file_name(r["index"])
        image_id = f"images/{split}/{name}"
        lines["image_ids"].append(image_id)
        lines["class_labels"].append(f"{image_id},{r['label']}")
        lines["image_sizes"].append(f"{image_id},{w},{h}")
        lines["localization"].append(f"{image_id},{','.join(map(str, r['box']))}")
        lines["masks"].append(f"{image_id},masks/{split}/{name},")
        lines["part_localization"].append(f"{image_id},{','.join(map(str, r['part_box']))}")
        lines["attributes"].append(
            f"{image_id},{r['part_side']},{r['body_texture_class']},{r['part_class']}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in lines.items():
        (folder / f"{name}.txt").write_text("".join(f"{line}\n" for line in content))
    packed = np.stack([r["part_mask"] for r in rows]) if rows else np.zeros((0, h, (w + 7) // 8), np.uint8)
    np.save(folder / PART_MASKS_FILE, packed)


def _generate(out: Path, spec: SyntheticSpec, num_workers: int) -> None:
    tasks = []
    for split in SPLITS:
        for sub in ("images", "masks"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)
        labels = split_labels(spec, split)
        for start in range(0, len(labels), _CHUNK):
            stop = min(start + _CHUNK, len(labels))
            tasks.append((str(out), spec, split, range(start, stop), labels[start:stop]))
    if num_workers <= 1 or len(tasks) <= 1:
        threads = cv2.getNumThreads()
        _init_worker()
        try:
            results = [_render_chunk(*t) for t in tasks]
        finally:
            cv2.setNumThreads(threads)
    else:
        # spawn, not fork: the parent may hold JAX / grain threads.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
                num_workers, mp_context=context, initializer=_init_worker) as pool:
            results = list(pool.map(_render_chunk, *zip(*tasks)))
    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for task, chunk_rows in zip(tasks, results):
        rows[task[2]].extend(chunk_rows)
    for split in SPLITS:
        _write_metadata(out / "metadata" / split, spec, split, rows[split])


def _default_workers(spec: SyntheticSpec) -> int:
    total = spec.num_train + spec.num_val + spec.num_test
    # Spawning workers costs ~1 s; only worth it for big sets.
    return 1 if total < 4 * _CHUNK else min(os.cpu_count() or 1, 8)


def write_synthetic_dataset(root: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec(),
                            *, num_workers: int | None = None) -> Path:
    """Generates the dataset of `spec` into `root` (the image root) and returns it.

    Reuses `root` if it already holds this spec. Regenerates it if it holds
    another spec written by this generator; raises DatasetError if it is a
    non-empty folder the generator did not write. Generation happens in a
    temporary sibling folder that is renamed into place with the stamp already
    written, so an interrupted run never looks like a complete set (a killed
    run may leave a hidden `.<name>.tmp-*` folder beside root: delete it).
    """
    root = Path(root)
    stamp = _read_stamp(root)
    if stamp == _stamp(spec):
        return root
    if stamp is None and root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(
            f"{root} exists and has no {STAMP_FILE} of the synthetic generator, so "
            f"the generator did not write it; refusing to overwrite it")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        _generate(tmp, spec, _default_workers(spec) if num_workers is None else num_workers)
        (tmp / STAMP_FILE).write_text(json.dumps(_stamp(spec), indent=2) + "\n")
        _swap_into_place(tmp, root, spec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _swap_into_place(tmp: Path, root: Path, spec: SyntheticSpec) -> None:
    old = None
    if root.exists():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        else:  # a stale generated set: move aside, then delete after the swap
            old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            root.rename(old)
    try:
        tmp.rename(root)
    except OSError:
        # Another process finished the same set first: theirs is as good.
        if _read_stamp(root) != _stamp(spec):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_synthetic_split(root: str | os.PathLike, split: str, **kwargs) -> SplitMetadata:
    """`load_split` for a generated set (metadata under root/metadata)."""
    root = Path(root)
    return load_split(root / "metadata", root, split, **kwargs)


def read_spec(root: str | os.PathLike) -> SyntheticSpec:
    """The spec a generated set was written with."""
    stamp = _read_stamp(Path(root))
    if stamp is None:
        raise DatasetError(f"{root} holds no synthetic set ({STAMP_FILE} missing or foreign)")
    return SyntheticSpec.from_json_dict(stamp["spec"])


def load_part_masks(root: str | os.PathLike, split: str) -> np.ndarray:
    """Part masks of a generated split, (N, H, W) bool in image_ids order."""
    root = Path(root)
    spec = read_spec(root)
    packed = np.load(root / "metadata" / split / PART_MASKS_FILE)
    return np.unpackbits(packed, axis=-1, count=spec.hw[1]).astype(bool)


def _summary(root: Path, seconds: float | None) -> str:
    spec = read_spec(root)
    h, w = spec.hw
    head = f"synthetic WSOL set at {root} ({w}x{h}, {spec.num_classes} classes, seed {spec.seed})"
    lines = [head + ("" if seconds is None else f", generated in {seconds:.1f} s")]
    for split in SPLITS:
        if spec.num_images(split) == 0:
            lines.append(f"  {split:5s}: empty")
            continue
        meta = load_synthetic_split(root, split, check_files=False)
        counts = np.bincount(list(meta.labels.values()), minlength=spec.num_classes)
        boxes = np.concatenate(list(meta.boxes.values()))
        box_area = ((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).mean()
        lines.append(
            f"  {split:5s}: {len(meta):6d} images, {counts.min()}-{counts.max()} per class, "
            f"mean box {100 * box_area / (h * w):.0f}% of the image")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsolax.data.synthetic",
        description="Generate the synthetic WSOL dataset (skipped if already there).")
    parser.add_argument("--root", required=True, help="output folder (image root)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: auto)")
    parser.add_argument("--preview", default=None, help="also save a preview grid PNG here")
    for field in dataclasses.fields(SyntheticSpec):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if field.name == "image_size":
            parser.add_argument(flag, type=int, nargs="+", metavar="N",
                                help="size, or height width (default 64)")
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=type(default[0]), nargs=2, metavar=("LO", "HI"),
                                help=f"default {default[0]} {default[1]}")
        else:
            parser.add_argument(flag, type=type(default), help=f"default {default}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {}
    for field in dataclasses.fields(SyntheticSpec):
        value = getattr(args, field.name)
        if value is None:
            continue
        if field.name == "image_size":
            if len(value) not in (1, 2):
                raise SystemExit("--image-size takes one or two integers")
            value = value[0] if len(value) == 1 else tuple(value)
        overrides[field.name] = tuple(value) if isinstance(value, list) else value
    spec = SyntheticSpec(**overrides)
    start = time.perf_counter()
    already = _read_stamp(Path(args.root)) == _stamp(spec)
    root = write_synthetic_dataset(args.root, spec, num_workers=args.workers)
    print(_summary(root, None if already else time.perf_counter() - start))
    if already:
        print("  (already generated with this spec: reused)")
    if args.preview:
        split = next(s for s in SPLITS if spec.num_images(s) > 0)
        save_preview_grid(load_synthetic_split(root, split), args.preview)
        print(f"  preview grid: {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
