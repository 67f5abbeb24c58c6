"""The grain training and evaluation pipelines."""

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolax.data.errors import DatasetError
from wsolax.data.metadata import load_split
from wsolax.data.pipeline import eval_batches, iterate, steps_per_epoch, train_batches
from wsolax.data.synthetic import SyntheticSpec, load_synthetic_split, write_synthetic_dataset
from wsolax.data.transforms import IMAGENET_MEAN, IMAGENET_STD

SPEC = SyntheticSpec(image_size=32, num_classes=3, num_train=12, num_val=3, num_test=6, seed=1)
KEYS = {"image", "label", "index", "boxes", "num_boxes"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "set", SPEC)


@pytest.fixture(scope="module")
def train(root):
    return load_synthetic_split(root, "train")


def _train(meta, **kwargs):
    args = dict(batch_size=4, resize_size=40, crop_size=32, seed=0)
    return train_batches(meta, **(args | kwargs))


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_train_batch_shapes_and_dtypes(train):
    batch = _train(train)[0]
    assert batch.keys() == KEYS
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
    assert batch["index"].dtype == np.int32 and batch["num_boxes"].dtype == np.int32
    assert batch["boxes"].shape == (4, 1, 4) and batch["boxes"].dtype == np.float32
    labels = [train.labels[train.image_ids[i]] for i in batch["index"]]
    np.testing.assert_array_equal(batch["label"], labels)


def test_batch_i_is_a_pure_function_of_seed_and_i(train):
    ds = _train(train)
    again = _train(train)
    later = [again[i] for i in (7, 3)]  # access order must not matter
    assert _equal(ds[3], later[1]) and _equal(ds[7], later[0])
    assert not _equal(ds[3], _train(train, seed=1)[3])
    # Resuming at step s yields batches s, s + 1, ... exactly.
    resumed = iterate(ds, start_step=5, num_threads=2)
    for step in (5, 6, 7):
        assert _equal(next(resumed), ds[step])


def test_worker_processes_give_the_same_batches(train):
    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags
        flags.FLAGS.mark_as_parsed()
    ds = _train(train)
    batches = iterate(ds, start_step=4, num_threads=1, num_workers=1)
    assert _equal(next(batches), ds[4]) and _equal(next(batches), ds[5])


def test_every_epoch_is_a_new_permutation_with_new_augmentation(train):
    ds = _train(train)
    per_epoch = steps_per_epoch(train, 4)
    assert per_epoch == 3
    epochs = [[ds[e * per_epoch + s] for s in range(per_epoch)] for e in range(3)]
    orders = [np.concatenate([b["index"] for b in epoch]) for epoch in epochs]
    for order in orders:
        assert sorted(order) == list(range(12))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])

    def image_of(epoch, index):
        for batch in epochs[epoch]:
            hits = np.flatnonzero(batch["index"] == index)
            if len(hits):
                return batch["image"][hits[0]]

    assert any(not np.array_equal(image_of(0, i), image_of(1, i)) for i in range(12))


def test_drop_remainder_false_keeps_the_short_batch(train):
    ds = _train(train, batch_size=5, drop_remainder=False)
    assert [len(ds[i]["label"]) for i in range(4)] == [5, 5, 2, 5]
    assert steps_per_epoch(train, 5, drop_remainder=False) == 3
    with pytest.raises(ValueError, match="does not fit"):
        _train(train, batch_size=13)


def test_eval_is_in_order_and_padded(root):
    test = load_synthetic_split(root, "test")
    ds = eval_batches(test, batch_size=4, crop_size=32)
    batches = list(iterate(ds, num_threads=2))
    assert len(ds) == len(batches) == 2
    assert all(b.keys() == KEYS | {"valid"} for b in batches)
    assert all(b["image"].shape == (4, 32, 32, 3) for b in batches)
    np.testing.assert_array_equal(batches[0]["index"], [0, 1, 2, 3])
    np.testing.assert_array_equal(batches[1]["index"], [4, 5, -1, -1])
    np.testing.assert_array_equal(batches[1]["valid"], [True, True, False, False])
    assert batches[0]["valid"].all()
    assert not batches[1]["image"][2:].any() and not batches[1]["num_boxes"][2:].any()
    labels = np.concatenate([b["label"][b["valid"]] for b in batches])
    np.testing.assert_array_equal(labels, [test.labels[i] for i in test.image_ids])
    # Same size as the originals: boxes pass through unchanged.
    boxes = np.concatenate([b["boxes"][b["valid"]] for b in batches])[:, 0]
    np.testing.assert_array_equal(boxes, [test.boxes[i][0] for i in test.image_ids])
    assert list(iterate(ds, start_step=1)) and not list(iterate(ds, start_step=2))


def test_normalisation_and_raw_uint8(train):
    raw = _train(train, mean=None, std=None)[2]
    normalised = _train(train)[2]
    assert raw["image"].dtype == np.uint8
    expected = (raw["image"] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(normalised["image"], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="both mean and std"):
        _train(train, mean=None)


def test_cached_images_give_the_same_batches(train, root):
    assert _equal(_train(train, cache_images=True)[4], _train(train)[4])
    val = load_synthetic_split(root, "val")
    assert _equal(eval_batches(val, batch_size=2, crop_size=24, cache_images=True)[1],
                  eval_batches(val, batch_size=2, crop_size=24)[1])


def test_non_square_sizes(train):
    batch = _train(train, resize_size=(36, 48), crop_size=(30, 40))[0]
    assert batch["image"].shape == (4, 30, 40, 3)
    assert eval_batches(train, batch_size=3, crop_size=(20, 28))[0]["image"].shape == (3, 20, 28, 3)
    with pytest.raises(ValueError, match="exceeds resize_size"):
        _train(train, resize_size=30, crop_size=32)


def test_corrupt_or_resized_image_fails_naming_the_file(tmp_path):
    root = write_synthetic_dataset(tmp_path / "set", dataclasses.replace(SPEC, num_train=4))
    meta = load_synthetic_split(root, "train")
    (root / meta.image_ids[2]).write_bytes(b"garbage")
    cv2.imwrite(str(root / meta.image_ids[3]), np.zeros((8, 8, 3), np.uint8))
    ds = eval_batches(meta, batch_size=1, crop_size=32)
    ds[0]
    with pytest.raises(DatasetError, match="000002.png"):
        ds[2]
    with pytest.raises(DatasetError, match="000003.png: decoded size 8x8 differs"):
        ds[3]


# --- boxes follow the image through the augmentation ------------------------

def _rectangle_set(root: Path, num: int = 16, extra_box: bool = False, size=None):
    """Black images of assorted sizes (or all `size` x `size`), each with one
    white rectangle whose inclusive pixel box is the ground truth (optionally
    a second box)."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    ids, labels, sizes, boxes = [], [], [], []
    for k in range(num):
        h, w = (size, size) if size else (int(rng.integers(30, 60)), int(rng.integers(30, 60)))
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        x1, y1 = int(rng.integers(x0 + 6, w)), int(rng.integers(y0 + 6, h))
        image = np.zeros((h, w, 3), np.uint8)
        image[y0:y1 + 1, x0:x1 + 1] = 255
        image_id = f"img/{k}.png"
        cv2.imwrite(str(root / image_id), image)
        ids.append(image_id)
        labels.append(f"{image_id},{k % 2}")
        sizes.append(f"{image_id},{w},{h}")
        boxes.append(f"{image_id},{x0},{y0},{x1},{y1}")
        if extra_box and k == 0:
            boxes.append(f"{image_id},0,0,{w - 1},{h - 1}")
    folder = root / "meta" / "train"
    folder.mkdir(parents=True)
    for name, lines in (("image_ids", ids), ("class_labels", labels),
                        ("image_sizes", sizes), ("localization", boxes)):
        (folder / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
    return load_split(root / "meta", root, "train")


def _check_boxes_bound_bright_pixels(batch, tolerance) -> int:
    """Returns how many examples still show their rectangle."""
    shown = 0
    for image, boxes, count in zip(batch["image"], batch["boxes"], batch["num_boxes"]):
        ys, xs = np.nonzero(image.max(axis=-1) > 127)
        if count == 0:  # cropped away entirely
            assert len(xs) == 0
            continue
        shown += 1
        np.testing.assert_allclose(boxes[0], [xs.min(), ys.min(), xs.max(), ys.max()],
                                   atol=tolerance)
    return shown


def test_train_boxes_follow_crop_and_flip_exactly(tmp_path):
    # No resizing: crop and flip are integer operations, so boxes must match
    # the bright pixels exactly. A strong crop (40 -> 28) cuts many
    # rectangles, exercising clipping and dropping.
    meta = _rectangle_set(tmp_path, size=40)
    ds = train_batches(meta, batch_size=8, resize_size=40, crop_size=28, seed=5,
                       mean=None, std=None)
    shown = sum(_check_boxes_bound_bright_pixels(ds[step], tolerance=0) for step in range(12))
    assert 48 < shown < 96


def test_train_boxes_follow_resize(tmp_path):
    meta = _rectangle_set(tmp_path)
    ds = train_batches(meta, batch_size=8, resize_size=48, crop_size=28, seed=5,
                       mean=None, std=None)
    # Boxes scale like the benchmark's (x * new / old), which can differ from
    # the blurred edge of the resized rectangle by up to about one pixel.
    shown = sum(_check_boxes_bound_bright_pixels(ds[step], tolerance=1.01) for step in range(12))
    assert shown > 48


def test_eval_boxes_are_scaled(tmp_path):
    meta = _rectangle_set(tmp_path)
    ds = eval_batches(meta, batch_size=8, crop_size=(40, 36), mean=None, std=None)
    for batch in ds:
        assert _check_boxes_bound_bright_pixels(batch, tolerance=1.01) == 8
    first = ds[0]
    w, h = meta.sizes[meta.image_ids[0]]
    np.testing.assert_allclose(first["boxes"][0, 0],
                               meta.boxes[meta.image_ids[0]][0] * [36 / w, 40 / h, 36 / w, 40 / h],
                               rtol=1e-6)


def test_several_boxes_are_padded_to_max_boxes(tmp_path):
    meta = _rectangle_set(tmp_path, num=4, extra_box=True)
    batch = eval_batches(meta, batch_size=4, crop_size=32)[0]
    assert batch["boxes"].shape == (4, 2, 4)
    np.testing.assert_array_equal(batch["num_boxes"], [2, 1, 1, 1])
    assert not batch["boxes"][1:, 1].any()
    w, h = meta.sizes[meta.image_ids[0]]
    np.testing.assert_allclose(batch["boxes"][0, 1], [0, 0, (w - 1) * 32 / w, (h - 1) * 32 / h],
                               rtol=1e-6)
    assert eval_batches(meta, batch_size=4, crop_size=32, max_boxes=5)[0]["boxes"].shape == (4, 5, 4)
    with pytest.raises(ValueError, match="max_boxes=1"):
        train_batches(meta, batch_size=2, resize_size=36, crop_size=32, seed=0, max_boxes=1)


# --- multi-host: each process builds its rows of every global batch ---------

@pytest.mark.parametrize("processes", [2, 4])
def test_process_slices_make_up_the_global_batch(train, root, processes):
    # 12 images, global batch 8: one batch per epoch, so steps 0..2 span
    # three epochs (new order, new crops each time).
    whole = _train(train, batch_size=8, process_index=0, process_count=1)
    parts = [_train(train, batch_size=8, process_index=p, process_count=processes)
             for p in range(processes)]
    for step in range(3):
        local = [part[step] for part in parts]
        assert all(len(b["label"]) == 8 // processes for b in local)
        union = {k: np.concatenate([b[k] for b in local]) for k in local[0]}
        assert _equal(union, whole[step])
        assert len(set(union["index"])) == 8  # no image on two processes
    # Threads and resuming apply per process as well.
    assert _equal(next(iterate(parts[1], start_step=2, num_threads=2)), parts[1][2])

    # Eval: 6 test images in global batches of 4; the last is half padding,
    # which with 4 processes falls entirely on processes 2 and 3.
    test = load_synthetic_split(root, "test")
    whole = eval_batches(test, batch_size=4, crop_size=32, process_index=0, process_count=1)
    parts = [eval_batches(test, batch_size=4, crop_size=32, process_index=p,
                          process_count=processes) for p in range(processes)]
    assert all(len(part) == len(whole) == 2 for part in parts)
    for step in range(2):
        union = {k: np.concatenate([part[step][k] for part in parts]) for k in whole[step]}
        assert _equal(union, whole[step])
    np.testing.assert_array_equal(np.concatenate([part[1]["index"] for part in parts]),
                                  [4, 5, -1, -1])


def test_process_arguments_are_checked(train):
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        _train(train, batch_size=4, process_index=0, process_count=3)
    with pytest.raises(ValueError, match=r"process_index=2 is not in \[0, 2\)"):
        _train(train, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="drop_remainder=False needs a single process"):
        _train(train, drop_remainder=False, process_index=0, process_count=2)


def test_process_defaults_come_from_jax(train):
    import jax

    assert (jax.process_index(), jax.process_count()) == (0, 1)
    assert _equal(_train(train)[1], _train(train, process_index=0, process_count=1)[1])
