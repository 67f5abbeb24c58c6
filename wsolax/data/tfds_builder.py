"""A TFDS builder for any dataset already in the wsolevaluation metadata layout.

One builder, `WsolMetadata`, with a config per dataset (cub, ilsvrc,
openimages, cars, synthetic); the configs differ only in name and
description, the reading is the same. It writes ArrayRecord files (random
access, read by grain without TensorFlow). Prepare with

  python -m wsolax.data.tfds_builder --name cub --manual-dir <folder> --data-dir <out>

where <folder> holds `metadata/<split>/*.txt` and the image ids are paths
relative to <folder> (the layout `python -m wsolax.data.synthetic` writes);
--metadata-root and --image-root set the two roots separately instead. The
records land in <out>/wsol_metadata/<name>/<version>/. Splits: whichever of
train, val and test have a metadata folder.

Features of an example (its key is the position in image_ids.txt, and the
records keep that order, so record i is image_ids[i]):

  image        the image file's bytes as stored (JPEG, PNG, ...; no re-encoding)
  image_id     the id from image_ids.txt
  label        class label
  size         (height, width) from image_sizes.txt
  boxes        (k, 4) float64 x0, y0, x1, y1 in pixels, exactly as in
               localization.txt (k = 0 for a train split without one);
               what wsolax reads
  bboxes       the same boxes the TFDS way: tfds.features.BBox, normalised
               (y0 / h, x0 / w, y1 / h, x1 / w) as float32. For TFDS tools;
               wsolax does not read them, because the float32 fraction does
               not always round-trip to the same pixel value
  masks        instance mask files' bytes (one per masks.txt line), empty for
               splits without masks.txt
  ignore_mask  the ignore mask file's bytes; empty if none

Masks are stored per instance, as on disk, rather than merged, because the
evaluator resizes each instance mask on its own before merging (so masks of
different sizes work); storing the files keeps `load_mask` on records equal
to `load_mask` on files.

The split's metadata files are also copied next to the records
(wsol_metadata/<split>/ in the dataset folder), so a reader gets ids, labels,
sizes and boxes of the whole split without reading every image's record.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from wsolax.data import metadata as md
from wsolax.data.errors import DatasetError

CONFIG_NAMES = ("cub", "ilsvrc", "openimages", "cars", "synthetic")
SPLITS = ("train", "val", "test")
# Inside the prepared dataset folder; not a TFDS name, so TFDS leaves it alone.
METADATA_COPY = "wsol_metadata"
_METADATA_FILES = (md.IMAGE_IDS_FILE, md.CLASS_LABELS_FILE, md.IMAGE_SIZES_FILE,
                   md.LOCALIZATION_FILE, md.MASKS_FILE)
_DESCRIPTIONS = {
    "cub": "CUB-200-2011 (wsolevaluation splits)",
    "ilsvrc": "ImageNet ILSVRC 2012 (wsolevaluation splits)",
    "openimages": "OpenImages30k with instance masks (wsolevaluation splits)",
    "cars": "Stanford Cars in the wsolevaluation layout",
    "synthetic": "wsolax's generated dataset (python -m wsolax.data.synthetic)",
}


def _bytes_feature() -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=(), dtype=np.object_)


def normalised_bboxes(boxes: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """(k, 4) pixel x0, y0, x1, y1 -> TFDS's normalised y0, x0, y1, x1."""
    w, h = size_wh
    x0, y0, x1, y1 = np.asarray(boxes, np.float64).reshape(-1, 4).T
    return np.stack([y0 / h, x0 / w, y1 / h, x1 / w], axis=1)


class WsolMetadata(tfds.core.GeneratorBasedBuilder):
    """A dataset in the wsolevaluation metadata layout (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=_DESCRIPTIONS[name])
                       for name in CONFIG_NAMES]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point manual_dir at a folder holding metadata/<split>/*.txt (wsolevaluation layout) "
        "with image ids relative to that folder, or pass metadata_root and image_root.")

    # tfds 4.9.10 locates a builder defined in a package through
    # importlib_resources, which it declares only for Python < 3.9; naming
    # this file directly skips that lookup (it only serves to find a
    # checksums file, which this builder has none of).
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def __init__(self, *, metadata_root: str | os.PathLike | None = None,
                 image_root: str | os.PathLike | None = None, **kwargs):
        # Reading prepared records needs neither root; only preparing does.
        self._metadata_root = metadata_root
        self._image_root = image_root
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict({
            "image": _bytes_feature(),
            "image_id": tfds.features.Text(),
            "label": tfds.features.Scalar(np.int64),
            "size": tfds.features.Tensor(shape=(2,), dtype=np.int64),
            "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float64),
            "bboxes": tfds.features.Sequence(tfds.features.BBoxFeature()),
            "masks": tfds.features.Sequence(_bytes_feature()),
            "ignore_mask": _bytes_feature(),
        })
        # No shuffling: record i must stay image_ids[i] so the metadata copy
        # indexes the records.
        return tfds.core.DatasetInfo(builder=self, description=self.builder_config.description,
                                     features=features, disable_shuffling=True)

    def _roots(self, dl_manager) -> tuple[Path, Path]:
        if self._metadata_root is not None and self._image_root is not None:
            return Path(self._metadata_root), Path(self._image_root)
        manual = Path(dl_manager.manual_dir)
        return (Path(self._metadata_root or manual / "metadata"),
                Path(self._image_root or manual))

    def _split_generators(self, dl_manager):
        metadata_root, image_root = self._roots(dl_manager)
        splits = [s for s in SPLITS if (metadata_root / s).is_dir()]
        if not splits:
            raise DatasetError(f"no split folder ({', '.join(SPLITS)}) under {metadata_root}")
        generators = {}
        for split in splits:
            # Validates everything (and that every file exists) before writing;
            # as in training, only the train split may come without boxes.
            meta = md.load_split(metadata_root, image_root, split,
                                 boxes_optional=split == "train")
            copy = self.data_path / METADATA_COPY / split
            copy.mkdir(parents=True, exist_ok=True)
            for name in _METADATA_FILES:
                if (metadata_root / split / name).is_file():
                    shutil.copyfile(metadata_root / split / name, copy / name)
            generators[split] = self._generate_examples(meta)
        return generators

    def _generate_examples(self, meta: md.SplitMetadata):
        for index, image_id in enumerate(meta.image_ids):
            yield index, _example(meta, image_id)


def _example(meta: md.SplitMetadata, image_id: str) -> dict:
    w, h = meta.sizes[image_id]
    boxes = meta.boxes[image_id]
    masks, ignore = meta.masks[image_id] if meta.masks is not None else ((), None)
    return {
        "image": meta.image_path(image_id).read_bytes(),
        "image_id": image_id,
        "label": meta.labels[image_id],
        "size": np.array([h, w], np.int64),
        "boxes": boxes,
        "bboxes": list(normalised_bboxes(boxes, (w, h))),
        "masks": [(meta.image_root / p).read_bytes() for p in masks],
        "ignore_mask": (meta.image_root / ignore).read_bytes() if ignore else b"",
    }


def prepare(name: str, data_dir: str | os.PathLike, manual_dir: str | os.PathLike | None = None,
            *, metadata_root: str | os.PathLike | None = None,
            image_root: str | os.PathLike | None = None) -> Path:
    """Writes the records of dataset config `name`; returns the dataset folder.
    Give `manual_dir`, or both `metadata_root` and `image_root`."""
    if manual_dir is None and (metadata_root is None or image_root is None):
        raise ValueError("give manual_dir, or both metadata_root and image_root")
    for what, folder in (("manual_dir", manual_dir), ("metadata_root", metadata_root),
                         ("image_root", image_root)):
        if folder is not None and not Path(folder).is_dir():
            raise DatasetError(f"{what} {folder} is not a folder")
    builder = WsolMetadata(config=name, data_dir=os.fspath(data_dir), file_format="array_record",
                           metadata_root=metadata_root, image_root=image_root)
    config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir) if manual_dir is not None else None)
    builder.download_and_prepare(download_config=config)
    return Path(builder.data_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, choices=CONFIG_NAMES)
    parser.add_argument("--data-dir", required=True, help="where the TFDS records go")
    parser.add_argument("--manual-dir", help="folder with metadata/ and the images")
    parser.add_argument("--metadata-root", help="instead of --manual-dir: the metadata root")
    parser.add_argument("--image-root", help="instead of --manual-dir: the image root")
    args = parser.parse_args(argv)
    try:
        path = prepare(args.name, args.data_dir, args.manual_dir,
                       metadata_root=args.metadata_root, image_root=args.image_root)
    except ValueError as e:  # DatasetError included: a message, not a traceback
        parser.error(str(e))
    print(f"prepared {path}")


if __name__ == "__main__":
    main()
