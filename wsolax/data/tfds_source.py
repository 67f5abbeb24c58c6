"""Reading a split prepared by wsolax.data.tfds_builder, for the grain pipeline.

`load_split` returns a `TfdsSplit`: the split's `SplitMetadata` (from the
metadata copy stored next to the records, so start-up reads no image) plus
`image_reader()` and `read_masks()`, which read the records instead of files. Batches
are the same as from the original folder: the bytes are the same files' bytes
and they are decoded the same way (OpenCV, Pillow as the fallback).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

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

    def __init__(self, records: TfdsRecords, image_ids: list[str], decoder: str = "cv2"):
        self.records, self.decoder = records, decoder
        self.positions = (None if image_ids == records.image_ids
                          else np.array([records.position(i) for i in image_ids]))

    def _position(self, index: int) -> int:
        return index if self.positions is None else int(self.positions[index])

    def __call__(self, index: int) -> np.ndarray:
        position = self._position(index)
        return decode_bytes(self.records[position]["image"], self.records.name(position),
                            decoder=self.decoder)

    def name(self, index: int) -> str:
        return self.records.name(self._position(index))


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsSplit(md.SplitMetadata):
    """SplitMetadata whose images and masks live in TFDS records: it overrides
    the two readers, so wsolax.data.metadata's `find_bad_images` and
    `load_mask` and the pipeline read the records. `image_root` is the dataset
    folder and `masks` names the original mask files."""

    records: TfdsRecords | None = None

    def image_reader(self, decoder: str = "cv2") -> TfdsImages:
        return TfdsImages(self.records, self.image_ids, decoder)

    def read_masks(self, image_id: str) -> tuple[list[np.ndarray], np.ndarray | None]:
        index = self.records.position(image_id)
        record = self.records[index]
        name = f"a mask of {self.records.name(index)}"
        ignore = record["ignore_mask"]
        return ([decode_bytes(m, name, grey=True) for m in record["masks"]],
                decode_bytes(ignore, name, grey=True) if ignore else None)


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
