"""grain input pipelines for training and evaluation.

Both return a `grain.MapDataset` whose element i is batch i, a dict of numpy
arrays of fixed shapes (jitted steps never recompile):

  image      float32 (B, H, W, 3) normalised; uint8 if mean and std are None
  label      int32 (B,)
  index      int32 (B,) position of the image in split.image_ids (-1: padding)
  boxes      float32 (B, max_boxes, 4) x0, y0, x1, y1 in the batch image's
             pixels, zero-padded past num_boxes
  num_boxes  int32 (B,)
  valid      bool (B,) eval only: False for the padding of the last batch

Training batch i is a pure function of (seed, i): the epoch's order comes from
grain's index shuffle seeded by (seed, epoch), and each example's crop / flip
from a generator seeded by (seed, position in the stream). So resuming at
step s is `iterate(ds, start_step=s)`, with no iterator state to checkpoint.

Multi-host: with P JAX processes, process p builds only rows
[p * B/P, (p + 1) * B/P) of every global batch (B = batch_size), which is the
process-local part `jax.make_array_from_process_local_data` expects when a
process's devices form one contiguous block of the 1-D data mesh (the usual
`jax.devices()` order). The rows are cut from the same global stream, so the
union over processes is bit-exactly the single-process batch, and batch i
stays a pure function of (seed, i). The process defaults to jax's own
(`jax.process_index()`, `jax.process_count()`).

Images come from the split's `image_reader()`: its files under
`meta.image_root`, or the TFDS records of a wsolax.data.tfds_source split.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
from collections.abc import Iterator, Sequence

import grain
import numpy as np

from wsolax.data.errors import DatasetError
from wsolax.data.metadata import SplitMetadata, size_problem
from wsolax.data.transforms import (
    DECODER_OF, IMAGENET_MEAN, IMAGENET_STD, Normalizer, as_hw, crop_boxes, hflip_boxes,
    pad_boxes, resize, scale_boxes)

Batch = dict[str, np.ndarray]


class _Images:
    """What the transforms need to know about a split, as flat picklable
    arrays (so the pipeline also works with grain's multiprocessing)."""

    def __init__(self, meta: SplitMetadata, max_boxes: int | None, cache: bool,
                 resize_method: str):
        ids = meta.image_ids
        if resize_method not in DECODER_OF:
            raise ValueError(f"resize must be one of {tuple(DECODER_OF)}, got {resize_method!r}")
        self.resize_method = resize_method
        self.read = meta.image_reader(DECODER_OF[resize_method])
        self.labels = np.array([meta.labels[i] for i in ids], dtype=np.int32)
        self.sizes_hw = [(meta.sizes[i][1], meta.sizes[i][0]) for i in ids]
        self.boxes = [meta.boxes[i].astype(np.float32) for i in ids]
        self.max_boxes = meta.max_boxes if max_boxes is None else max_boxes
        if self.max_boxes < meta.max_boxes:
            raise ValueError(
                f"max_boxes={max_boxes} but an image of split {meta.split!r} has "
                f"{meta.max_boxes} boxes")
        self.cache = None
        if cache:
            with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
                self.cache = list(pool.map(self._decode, range(len(ids))))

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> np.ndarray:
        return self._decode(index) if self.cache is None else self.cache[index]

    def _decode(self, index: int) -> np.ndarray:
        image = self.read(index)
        h, w = self.sizes_hw[index]
        problem = size_problem(self.read.name(index), image, (w, h))
        if problem:
            raise DatasetError(problem)
        return image

    def example(self, index: int, image: np.ndarray, boxes: np.ndarray) -> dict:
        padded, count = pad_boxes(boxes, self.max_boxes)
        return dict(image=np.ascontiguousarray(image), label=self.labels[index],
                    index=np.int32(index), boxes=padded, num_boxes=count)

    def blank(self, image_hw: tuple[int, int]) -> dict:
        """A padding example: all zeros, index -1."""
        return dict(image=np.zeros((*image_hw, 3), np.uint8), label=np.int32(0),
                    index=np.int32(-1), boxes=np.zeros((self.max_boxes, 4), np.float32),
                    num_boxes=np.int32(0))


class _TrainExample:
    """Resize, random crop, random horizontal flip (boxes follow along)."""

    def __init__(self, images: _Images, resize_hw, crop_hw):
        if crop_hw[0] > resize_hw[0] or crop_hw[1] > resize_hw[1]:
            raise ValueError(f"crop_size {crop_hw} exceeds resize_size {resize_hw}")
        self.images, self.resize_hw, self.crop_hw = images, resize_hw, crop_hw

    def __call__(self, index: int, rng: np.random.Generator) -> dict:
        image = self.images.load(index)
        boxes = scale_boxes(self.images.boxes[index], image.shape[:2], self.resize_hw)
        image = resize(image, self.resize_hw, self.images.resize_method)
        (rh, rw), (ch, cw) = self.resize_hw, self.crop_hw
        top, left = int(rng.integers(rh - ch + 1)), int(rng.integers(rw - cw + 1))
        image = image[top:top + ch, left:left + cw]
        boxes = crop_boxes(boxes, top, left, self.crop_hw)
        if rng.random() < 0.5:
            image = image[:, ::-1]
            boxes = hflip_boxes(boxes, cw)
        return self.images.example(index, image, boxes)


class _EvalExample:
    """Plain resize to the crop size, as the benchmark does (no crop)."""

    def __init__(self, images: _Images, crop_hw):
        self.images, self.crop_hw = images, crop_hw

    def __call__(self, index: int) -> dict:
        image = self.images.load(index)
        boxes = scale_boxes(self.images.boxes[index], image.shape[:2], self.crop_hw)
        return self.images.example(index, resize(image, self.crop_hw, self.images.resize_method),
                                   boxes)


class _Collate:
    """Stacks examples, normalises the whole batch at once and, for eval,
    pads a short batch to `pad_to` rows with a `valid` mask."""

    def __init__(self, normalizer: Normalizer | None, pad_to: int | None = None,
                 blank: dict | None = None):
        if pad_to is not None and blank is None:
            raise ValueError("padding needs a blank example")
        self.normalizer, self.pad_to, self.blank = normalizer, pad_to, blank

    def __call__(self, examples: Sequence[dict]) -> Batch:
        real = len(examples)
        if self.pad_to is not None:
            # Padded with blanks before stacking rather than after, so that a
            # process whose rows of the last batch are all padding still
            # gets a batch of the right shapes.
            examples = [*examples, *[self.blank] * (self.pad_to - real)]
        batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
        if self.normalizer is not None:
            batch["image"] = self.normalizer(batch["image"])
        if self.pad_to is not None:
            batch["image"][real:] = 0  # padding is all zeros after normalisation too
            batch["valid"] = np.arange(self.pad_to) < real
        return batch


class _LocalBatches(grain.MapDataset):
    """Batch i holds rows [rows[0], rows[1]) of global batch i of `parent`.

    Global batches are cut like grain's `batch`: each epoch of `parent`
    (len(parent) elements, later epochs at indices offset by multiples of
    len(parent), which reshuffle and re-augment) is batched on its own, so
    batch i is epoch i // len(self), batch i % len(self) of it. Only the
    selected rows are built: each process decodes just its share.
    """

    def __init__(self, parent: grain.MapDataset, batch_size: int, rows: tuple[int, int],
                 drop_remainder: bool, collate: _Collate):
        super().__init__(parent)
        self._batch_size, self._rows, self._collate = batch_size, rows, collate
        n = len(parent)
        self._length = n // batch_size if drop_remainder else -(-n // batch_size)

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        return f"_LocalBatches(batch_size={self._batch_size}, rows={self._rows})"

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        n = len(self._parent)
        epoch, batch = divmod(index, self._length)
        start = batch * self._batch_size
        stop = min(n, start + self._batch_size)
        first, last = start + self._rows[0], min(stop, start + self._rows[1])
        offset = epoch * n
        return self._collate([self._parent[offset + k] for k in range(first, last)])


def _process_rows(batch_size: int, process_index: int | None,
                  process_count: int | None) -> tuple[int, int]:
    """This process's rows [lo, hi) of every global batch."""
    if process_index is None or process_count is None:
        # Asking jax starts its backend (on a GPU host: claims the GPU), so
        # data-only tools pass both numbers; a multi-host run must have called
        # jax.distributed.initialize() before building its pipelines.
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} is not in [0, {process_count})")
    if batch_size % process_count:
        raise ValueError(f"batch_size={batch_size} is not divisible by the "
                         f"{process_count} processes that share each batch")
    local = batch_size // process_count
    return process_index * local, (process_index + 1) * local


def _normalizer(mean, std) -> Normalizer | None:
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither (uint8 images)")
    return None if mean is None else Normalizer(mean, std)


def _stream_seeds(seed: int) -> tuple[int, int]:
    """Independent 32-bit seeds for the shuffle and the augmentation."""
    shuffle_seed, augment_seed = np.random.SeedSequence(seed).generate_state(2)
    return int(shuffle_seed), int(augment_seed)


def steps_per_epoch(meta: SplitMetadata, batch_size: int, drop_remainder: bool = True) -> int:
    return len(meta) // batch_size if drop_remainder else -(-len(meta) // batch_size)


def train_batches(
    meta: SplitMetadata,
    *,
    batch_size: int,
    resize_size: int | Sequence[int],
    crop_size: int | Sequence[int],
    seed: int,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
    drop_remainder: bool = True,
    max_boxes: int | None = None,
    cache_images: bool = False,
    resize: str = "pil_bilinear",
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.MapDataset:
    """Infinite training stream; element i is (this process's rows of)
    batch i (see module docstring).

    Each epoch is a fresh permutation of the split. With drop_remainder the
    last partial batch of each epoch is dropped, so all batches have
    batch_size examples; `steps_per_epoch` gives the batches per epoch.
    `max_boxes` defaults to the split's largest box count. `cache_images`
    decodes every image once, up front, and keeps it in memory: for small
    sets (the synthetic one is ~60 MB) it takes decoding out of the loop.
    `batch_size` is the global batch size; each of the `process_count`
    processes gets batch_size / process_count rows (see module docstring).
    `resize`: how images are decoded and resized (wsolax.data.transforms:
    "pil_bilinear", the benchmark's, or "cv2_linear").
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rows = _process_rows(batch_size, process_index, process_count)
    if not drop_remainder and rows[1] - rows[0] < batch_size:
        # A short last batch cannot be split evenly over the processes.
        raise ValueError("drop_remainder=False needs a single process")
    images = _Images(meta, max_boxes, cache_images, resize)
    if drop_remainder and len(images) < batch_size:
        raise ValueError(f"batch_size={batch_size} does not fit {len(images)} images")
    shuffle_seed, augment_seed = _stream_seeds(seed)
    examples = (
        grain.MapDataset.range(len(images))
        .shuffle(seed=shuffle_seed)
        # Seeded by the element's position in the (repeated) stream, so
        # every epoch gets new crops and flips.
        .random_map(_TrainExample(images, as_hw(resize_size), as_hw(crop_size)),
                    seed=augment_seed)
    )
    return _LocalBatches(examples, batch_size, rows, drop_remainder,
                         _Collate(_normalizer(mean, std))).repeat()


def eval_batches(
    meta: SplitMetadata,
    *,
    batch_size: int,
    crop_size: int | Sequence[int],
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
    max_boxes: int | None = None,
    cache_images: bool = False,
    resize: str = "pil_bilinear",
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.MapDataset:
    """One pass over the split in file order; every batch carries `valid`
    and the last one is padded to batch_size (see module docstring).
    `max_boxes`, `cache_images`, `resize` and the processes as in `train_batches`;
    with several processes each gets its rows of the padded global batch."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rows = _process_rows(batch_size, process_index, process_count)
    images = _Images(meta, max_boxes, cache_images, resize)
    crop_hw = as_hw(crop_size)
    collate = _Collate(_normalizer(mean, std), pad_to=rows[1] - rows[0],
                       blank=images.blank(crop_hw))
    examples = grain.MapDataset.range(len(images)).map(_EvalExample(images, crop_hw))
    return _LocalBatches(examples, batch_size, rows, False, collate)


def iterate(ds: grain.MapDataset, start_step: int = 0, *, num_threads: int = 4,
            prefetch_buffer_size: int = 8, num_workers: int = 0) -> Iterator[Batch]:
    """Iterates batches start_step, start_step + 1, ... of `ds`, building up
    to `num_threads` batches in parallel threads ahead of the consumer.
    Finite datasets simply end.

    Threads help as far as decoding and OpenCV release the GIL; for small
    images Python overhead dominates, so `num_workers` > 0 additionally
    spreads the work over that many processes (grain's mp_prefetch; batches
    are identical, just faster). grain then needs absl flags to be parsed,
    which absl.app.run does.
    """
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    if start_step:
        if len(ds) < sys.maxsize and start_step >= len(ds):
            return iter(())
        ds = ds[start_step:]
    options = grain.ReadOptions(num_threads=num_threads,
                                prefetch_buffer_size=prefetch_buffer_size)
    stream = ds.to_iter_dataset(options)
    if num_workers > 0:
        stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return iter(stream)
