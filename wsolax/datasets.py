"""Resolve a config's `data` section into split metadata (generating the embedded set if needed)."""

from __future__ import annotations

from pathlib import Path

import ml_collections

from wsolax.config import check_synthetic
from wsolax.data import metadata as md
from wsolax.data import tfds_source
from wsolax.data import validate as data_validate
from wsolax.data.transforms import DECODER_OF


def dataset_roots(data_cfg: ml_collections.ConfigDict) -> tuple[Path, Path]:
    """(metadata_root, image_root); generates the embedded synthetic set on first use."""
    if data_cfg.source == "synthetic":
        from wsolax.data.synthetic import SyntheticSpec, write_synthetic_dataset

        check_synthetic(data_cfg.synthetic)  # also for configs built without load_config
        overrides = {k: (tuple(v) if isinstance(v, list) else v)
                     for k, v in data_cfg.synthetic.items()}
        spec = SyntheticSpec(num_classes=data_cfg.num_classes, **overrides)
        root = write_synthetic_dataset(data_cfg.root, spec)
        return Path(root) / "metadata", Path(root)
    return Path(data_cfg.metadata_root), Path(data_cfg.image_root)


def split_exists(data_cfg: ml_collections.ConfigDict, split: str) -> bool:
    """Whether the dataset has `split` (its metadata folder; a TFDS source is asked on load)."""
    if data_cfg.source == "tfds":
        return True
    metadata_root, _ = dataset_roots(data_cfg)
    return (metadata_root / split).is_dir()


def load_split(data_cfg: ml_collections.ConfigDict, split: str, check_files: bool = True,
               verify_images: bool = False):
    """Validated metadata of `split`; with `verify_images`, every image is decoded once first
    and bad ones fail the run or, with data.bad_images='skip', are dropped from the split."""
    # Only the training split may come without boxes (ILSVRC / OpenImages train: labels only).
    boxes_optional = split == data_cfg.train_split
    if data_cfg.source == "tfds":
        meta = tfds_source.load_split(data_cfg.tfds_data_dir, data_cfg.tfds_name, split,
                                      num_classes=data_cfg.num_classes,
                                      boxes_optional=boxes_optional)
    else:
        metadata_root, image_root = dataset_roots(data_cfg)
        meta = md.load_split(metadata_root, image_root, split, num_classes=data_cfg.num_classes,
                             check_files=check_files, boxes_optional=boxes_optional)
    return verify_split_images(data_cfg, meta) if verify_images else meta


def verify_split_images(data_cfg: ml_collections.ConfigDict, meta: md.SplitMetadata):
    """Decode every image of `meta` once: bad ones fail the run or, with data.bad_images='skip',
    are dropped from the split (the returned metadata)."""
    bad = md.find_bad_images(meta, num_threads=max(1, data_cfg.num_threads),
                             decoder=DECODER_OF[data_cfg.resize])
    problems = list(bad.values())
    if problems and data_cfg.get("bad_images", "fail") == "skip":
        print(f"data.bad_images='skip': dropped {len(bad)} of {len(meta)} image(s) of split "
              f"'{meta.split}', e.g. {problems[0]}")
        return md.drop_images(meta, bad)
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise md.DatasetError(f"{len(problems)} bad image(s) in split '{meta.split}':\n  "
                              f"{shown}{more}\n(data.bad_images='skip' drops them instead)")
    return meta


AUTO_DECODE_LIMIT = 20_000  # data.verify_eval_images='auto' decodes splits up to this size


def evaluation_splits(cfg: ml_collections.ConfigDict) -> list[str]:
    """The splits a training run will evaluate on: validation during training, the threshold
    split and the reported splits after it."""
    splits = []
    if cfg.train.val_every_epochs:
        splits.append(cfg.eval.threshold_split)
    if cfg.eval.after_training:
        splits += [cfg.eval.threshold_split, *cfg.eval.splits]
    return list(dict.fromkeys(s for s in splits if s != cfg.data.train_split))


def validate_dataset(cfg: ml_collections.ConfigDict, splits=None, decode: bool = False):
    """`python -m wsolax.validate`: one report per split (default: the training split and every
    evaluation split)."""
    if cfg.data.source not in ("folder", "synthetic"):
        raise md.DatasetError(f"validate reads datasets in the metadata layout (data.source "
                              f"'folder' or 'synthetic'), not data.source={cfg.data.source!r}")
    if not splits:
        splits = dict.fromkeys([cfg.data.train_split, cfg.eval.threshold_split, *cfg.eval.splits])
    metadata_root, image_root = dataset_roots(cfg.data)
    return data_validate.validate(cfg.data, metadata_root, image_root, splits, decode=decode)


def check_evaluation_splits(cfg: ml_collections.ConfigDict, splits=None) -> None:
    """Before training: every evaluation split's metadata (and files) checked, and its images
    decoded as data.verify_eval_images says, so a broken val or test set stops the run now, not
    after hours of training."""
    mode = cfg.data.get("verify_eval_images", "auto")
    for split in evaluation_splits(cfg) if splits is None else splits:
        meta = load_split(cfg.data, split)  # the metadata is read once, the images decoded then
        if mode == "all" or (mode == "auto" and len(meta) <= AUTO_DECODE_LIMIT):
            verify_split_images(cfg.data, meta)
