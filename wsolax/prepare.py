"""`python -m wsolax.prepare {cub,ilsvrc,openimages,cars} --root <dataset folder> --out <metadata>`

Writes the wsolevaluation metadata of a dataset kept in its original layout (see
wsolax/data/sources/<name>.py for what each reads), then prints how to point a config at it.
Images are never copied, changed or downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsolax.data.errors import DatasetError

CONFIGS = {  # an example config per dataset, for the printed commands
    "cub": "configs/cub_adl_resnet50.py",
    "ilsvrc": "configs/ilsvrc_adl_resnet50.py",
    "openimages": "configs/openimages_cam_resnet50.py",
    "cars": "configs/cars_dgdm_resnet18.py",
}
VAL_HELP = {
    "cub": "images per class drawn from the official train set for val (default 5, as the "
           "benchmark's CUBV2)",
    "ilsvrc": "images per class drawn from the official val set for val, removed from test "
              "(default 10, as the benchmark's ImageNetV2)",
    "openimages": "keep N of the benchmark's val images per class (default 0: all 25)",
    "cars": "images per class drawn from the official train set for val (default 5)",
}
REPO = Path(__file__).resolve().parents[1]


def _config_data(dataset: str):
    """The example config's `data` section: its class count and max_boxes decide which flags the
    printed commands need (read from the config, so the two cannot disagree)."""
    from wsolax.config import load_config

    return load_config(REPO / CONFIGS[dataset]).data


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", required=True, help="the dataset folder, as distributed")
    common.add_argument("--out", required=True, help="folder to write the metadata to")
    common.add_argument("--val-from", default=None,
                        help="a val split already in the metadata layout (e.g. the benchmark's "
                             "metadata/<dataset>/val), ids relative to the same image root")
    common.add_argument("--seed", type=int, default=0, help="seed of the val draw (default 0)")
    common.add_argument("--workers", type=int, default=16, help="threads reading image headers")
    common.add_argument("--bad-images", choices=("fail", "skip"), default="fail",
                        help="an image whose header cannot be read: stop (default) or leave it "
                             "out with a count")
    common.add_argument("--force", action="store_true", help="overwrite metadata in --out")

    p = argparse.ArgumentParser(prog="python -m wsolax.prepare", description=__doc__.split("\n\n")[1],
                                allow_abbrev=False)
    sub = p.add_subparsers(dest="dataset", required=True)
    for name in CONFIGS:
        s = sub.add_parser(name, parents=[common], allow_abbrev=False)
        s.add_argument("--val-per-class", type=int, default=None, help=VAL_HELP[name])
        if name == "cub":
            s.add_argument("--segmentations", default=None,
                           help="CUB segmentation PNGs (default: segmentations/ beside images/ "
                                "or beside the CUB_200_2011 folder, if present)")
            s.add_argument("--no-segmentations", dest="segmentations", action="store_false",
                           help="write no masks even if segmentations are present")
        if name == "ilsvrc":
            s.add_argument("--bbox-dir", default=None,
                           help="folder of the val box XML files (default: the first of "
                                "val_bbox/, bbox_val/, Annotations/CLS-LOC/val/, val/ holding them)")
        if name == "openimages":
            s.add_argument("--source-metadata", default=None,
                           help="the benchmark's metadata/OpenImages folder (default: "
                                "<root>/metadata or <root>/metadata/OpenImages)")
            s.add_argument("--mask-root", default=None,
                           help="folder the mask paths are relative to (default: --root)")
    return p


def _options(args) -> dict:
    options = dict(val_from=args.val_from, seed=args.seed, workers=args.workers,
                   bad_images=args.bad_images)
    if args.val_per_class is not None:
        options["val_per_class"] = args.val_per_class
    for key in ("segmentations", "bbox_dir", "source_metadata", "mask_root"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    return options


def summary(prepared, out: Path) -> str:
    """What was written and the commands that use it."""
    lines = [f"wrote {prepared.dataset} metadata to {out}:"]
    most_boxes = 0
    for name, split in prepared.splits.items():
        counts = [len(b) for b in split.boxes.values()] if split.boxes is not None else []
        most_boxes = max([most_boxes, *counts])
        boxes = f"{sum(counts)} boxes (at most {max(counts)} per image)" if counts else "no boxes"
        masks = f", masks for {len(split.masks)}" if split.masks is not None else ""
        lines.append(f"  {name}: {len(split)} images, {len(set(split.labels.values()))} "
                     f"classes, {boxes}{masks}")
    lines += [f"  note: {n}" for n in prepared.notes]
    meta, images = out.resolve(), Path(prepared.image_root).resolve()
    flags = f"--config.data.metadata_root={meta} --config.data.image_root={images}"
    config_data = _config_data(prepared.dataset)
    if prepared.num_classes != config_data.num_classes:  # e.g. an ILSVRC subset
        flags += f" --config.data.num_classes={prepared.num_classes}"
    if most_boxes > config_data.max_boxes:
        flags += f" --config.data.max_boxes={most_boxes}"
    config = CONFIGS[prepared.dataset]
    key = prepared.dataset.upper()
    lines += [
        "",
        "Point a config at it with",
        f"  {flags}",
        f"or the environment variables WSOLAX_{key}_METADATA={meta} WSOLAX_{key}_IMAGES={images}",
        "Check it (decoding every image) and train:",
        f"  python -m wsolax.validate --config {config} {flags} --decode",
        f"  python train.py --config {config} {flags}",
    ]
    if most_boxes > config_data.max_boxes:
        lines.append(f"(data.max_boxes must be >= {most_boxes}, the most boxes of one image)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from wsolax.data.sources import CONVERTERS, write_prepared

    try:
        prepared = CONVERTERS[args.dataset](args.root, **_options(args))
        out = write_prepared(prepared, args.out, force=args.force,
                             extra_info={"root": str(Path(args.root).resolve()),
                                         "seed": args.seed, "val_from": args.val_from})
    except (DatasetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(prepared, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
