"""Reading a split prepared by wsolax.data.tfds_builder, for the grain pipeline.

`load_split` returns a `TfdsSplit`: the split's `SplitMetadata` (from the
metadata copy stored next to the records, so start-up reads no image) plus
`image_reader()`, which the pipeline uses instead of opening files. Batches
are the same as from the original folder: the bytes are the same files' bytes
and they are decoded the same way (OpenCV, Pillow as the fallback).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from wsolax.data import metadata as md
from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_bytes


class TfdsRecords:
    """Random access to a split's records, opened lazily so that it pickles
    (grain worker processes each open their own reader)."""

    def __init__(self, dataset_dir: str | os.PathLike, split: str, image_ids: list[str]):
        self.dataset_dir, self.split, self.image_ids = os.fspath(dataset_dir), split, image_ids
        self._source = None
        self._lock = threading.Lock()
        self._positions = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_source", "_lock", "_positions")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _source=None, _lock=threading.Lock(), _positions=None)

    def position(self, image_id: str) -> int:
        # Built on first use: only mask lookups need it, and only on eval splits.
        if self._positions is None:
            self._positions = {i: k for k, i in enumerate(self.image_ids)}
        return self._positions[image_id]

    def __len__(self) -> int:
        return len(self.image_ids)

    def _open(self):
        with self._lock:
            if self._source is None:
                import tensorflow_datasets as tfds

                self._source = tfds.builder_from_directory(self.dataset_dir).as_data_source(
                    self.split)
        return self._source

    def __getitem__(self, index: int) -> dict:
        source = self._source if self._source is not None else self._open()
        record = source[index]
        image_id = record["image_id"].decode("utf-8")
        if image_id != self.image_ids[index]:
            # Records written from other metadata than the copy beside them
            # would pair images with the wrong labels and boxes.
            raise DatasetError(
                f"{self.name(index)}: record holds image {image_id!r}, the metadata copy "
                f"says {self.image_ids[index]!r}; prepare the dataset again")
        return record

    def name(self, index: int) -> str:
        return f"{self.dataset_dir} {self.split}[{index}] ({self.image_ids[index]})"


class TfdsImages:
    """The pipeline's image reader: position in `image_ids` -> RGB array.
    `image_ids` may be a subset of the records' (images dropped after
    preparing, e.g. undecodable ones), so positions go through the ids."""

    def __init__(self, records: TfdsRecords, image_ids: list[str]):
        self.records = records
        self.positions = (None if image_ids == records.image_ids
                          else np.array([records.position(i) for i in image_ids]))

    def _position(self, index: int) -> int:
        return index if self.positions is None else int(self.positions[index])

    def __call__(self, index: int) -> np.ndarray:
        position = self._position(index)
        return decode_bytes(self.records[position]["image"], self.records.name(position))

    def name(self, index: int) -> str:
        return self.records.name(self._position(index))


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsSplit(md.SplitMetadata):
    """SplitMetadata whose images and masks live in TFDS records. `image_root`
    is the dataset folder and `masks` names the original mask files: use
    `load_mask` here (not wsolax.data.metadata's) and `image_reader()`."""

    records: TfdsRecords | None = None

    def image_reader(self) -> TfdsImages:
        return TfdsImages(self.records, self.image_ids)


def dataset_dir(data_dir: str | os.PathLike, name: str) -> Path:
    """The prepared folder of config `name` under `data_dir` (current version)."""
    from wsolax.data.tfds_builder import WsolMetadata

    builder = WsolMetadata(config=name, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        raise DatasetError(
            f"no prepared TFDS dataset {name!r} at {builder.data_path}; run "
            f"python -m wsolax.data.tfds_builder --name {name} --manual-dir <folder> "
            f"--data-dir {data_dir}")
    return Path(builder.data_path)


def load_split(data_dir: str | os.PathLike, name: str, split: str,
               num_classes: int | None = None, boxes_optional: bool = False) -> TfdsSplit:
    """Validated metadata of `split` of the prepared dataset `name`, reading
    its images from the records; the arguments as in
    wsolax.data.metadata.load_split."""
    from wsolax.data.tfds_builder import METADATA_COPY

    folder = dataset_dir(data_dir, name)
    meta = md.load_split(folder / METADATA_COPY, folder, split, num_classes=num_classes,
                         check_files=False, boxes_optional=boxes_optional)
    records = TfdsRecords(folder, split, meta.image_ids)
    fields = {f.name: getattr(meta, f.name) for f in dataclasses.fields(meta)}
    return TfdsSplit(**fields, records=records)


def load_mask(meta: TfdsSplit, image_id: str, out_hw: tuple[int, int]) -> np.ndarray:
    """`wsolax.data.metadata.load_mask` for a TfdsSplit: same values, from the
    mask bytes in the records."""
    if meta.masks is None:
        raise DatasetError(f"split {meta.split!r} has no {md.MASKS_FILE}")
    index = meta.records.position(image_id)
    record = meta.records[index]
    size_wh = (out_hw[1], out_hw[0])
    name = meta.records.name(index)

    def read(data: bytes) -> np.ndarray:
        mask = decode_bytes(data, f"a mask of {name}", grey=True)
        return cv2.resize(mask, size_wh, interpolation=cv2.INTER_NEAREST) > 127

    foreground = np.logical_or.reduce([read(m) for m in record["masks"]])
    out = foreground.astype(np.uint8) * md.MASK_FOREGROUND
    if record["ignore_mask"]:
        out[read(record["ignore_mask"]) & ~foreground] = md.MASK_IGNORE
    return out


def find_bad_images(meta: TfdsSplit, num_threads: int = 8) -> dict[str, str]:
    """`wsolax.data.metadata.find_bad_images` for a TfdsSplit: bad image id ->
    what is wrong with it."""
    reader = meta.image_reader()

    def check(index: int) -> str | None:
        try:
            h, w = reader(index).shape[:2]
        except DatasetError as e:
            return str(e)
        expected = meta.sizes[meta.image_ids[index]]
        if (w, h) != expected:
            return (f"{reader.name(index)}: decoded size {w}x{h} differs from "
                    f"{md.IMAGE_SIZES_FILE}'s {expected[0]}x{expected[1]}")
        return None

    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        results = pool.map(check, range(len(meta)))
        return {i: r for i, r in zip(meta.image_ids, results) if r is not None}
