"""TFDS records of a metadata-layout dataset: what the builder stores, and that
training / evaluation batches read from them equal those read from the files."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolax import datasets
from wsolax.config import ConfigError, base_config, validate
from wsolax.data import metadata as md
from wsolax.data import tfds_builder, tfds_source
from wsolax.data.errors import DatasetError
from wsolax.data.pipeline import eval_batches, train_batches

# id -> (width, height, label, boxes x0, y0, x1, y1); JPEGs and PNGs of assorted sizes.
TRAIN = {
    "images/train/a b.jpg": (40, 30, 0, [(4, 3, 20, 30)]),
    "images/train/b.png": (33, 47, 1, [(0, 0, 32, 46), (5.5, 6.25, 10, 12)]),
    "images/train/c.jpg": (50, 38, 2, [(10, 2, 49, 37)]),
    "images/train/d.png": (36, 36, 0, [(1, 1, 2, 2)]),
    "images/train/e.jpg": (45, 41, 1, [(7, 8, 40, 41)]),
    "images/train/f.png": (39, 44, 2, [(3, 9, 30, 20)]),
}
TEST = {
    "images/test/g.jpg": (42, 34, 1, [(2, 3, 30, 33)]),
    "images/test/h.png": (37, 31, 0, [(4, 4, 20, 20), (21, 5, 36, 30)]),
    "images/test/i.jpg": (35, 46, 2, [(0, 10, 35, 46)]),
}
# test split masks: id -> (instance mask files, ignore file or "")
MASKS = {
    "images/test/g.jpg": (["masks/g_0.png"], ""),
    "images/test/h.png": (["masks/h_0.png", "masks/h_1.png"], "masks/h_ignore.png"),
    "images/test/i.jpg": (["masks/i_0.png"], ""),
}


def _write_split(root: Path, split: str, table: dict, masks: dict | None = None) -> None:
    rng = np.random.default_rng(len(table))
    folder = root / "metadata" / split
    folder.mkdir(parents=True)
    lines = {name: [] for name in ("image_ids", "class_labels", "image_sizes", "localization")}
    for image_id, (w, h, label, boxes) in table.items():
        (root / image_id).parent.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if image_id.endswith(".jpg") else []
        assert cv2.imwrite(str(root / image_id), image, params)
        lines["image_ids"].append(image_id)
        lines["class_labels"].append(f"{image_id},{label}")
        lines["image_sizes"].append(f"{image_id},{w},{h}")
        lines["localization"] += [f"{image_id},{x0},{y0},{x1},{y1}" for x0, y0, x1, y1 in boxes]
    if masks is not None:
        lines["masks"] = []
        for image_id, (instances, ignore) in masks.items():
            w, h = table[image_id][:2]
            for path in [*instances, *([ignore] if ignore else [])]:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                mask = (rng.random((h, w)) < 0.4).astype(np.uint8) * 255
                assert cv2.imwrite(str(root / path), mask)
            lines["masks"] += [f"{image_id},{p},{ignore}" for p in instances]
    for name, rows in lines.items():
        (folder / f"{name}.txt").write_text("".join(f"{r}\n" for r in rows))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wsol") / "cub_like"
    _write_split(root, "train", TRAIN)
    _write_split(root, "test", TEST, MASKS)
    return root


@pytest.fixture(scope="module")
def data_dir(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tfds")
    tfds_builder.main(["--name", "cub", "--manual-dir", str(tree), "--data-dir", str(out)])
    return out


def _records(data_dir: Path, split: str):
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(tfds_source.dataset_dir(data_dir, "cub")).as_data_source(split)


def test_records_hold_exactly_what_was_written(tree, data_dir):
    folder = tfds_source.dataset_dir(data_dir, "cub")
    assert folder == data_dir / "wsol_metadata" / "cub" / "1.0.0"
    for split, table in (("train", TRAIN), ("test", TEST)):
        records = _records(data_dir, split)
        assert len(records) == len(table)
        for record, (image_id, (w, h, label, boxes)) in zip(records, table.items()):
            assert record["image_id"].decode() == image_id
            assert record["image"] == (tree / image_id).read_bytes()
            assert record["label"] == label
            np.testing.assert_array_equal(record["size"], [h, w])
            assert record["boxes"].dtype == np.float64
            np.testing.assert_array_equal(record["boxes"], np.array(boxes, np.float64))
            if split == "train":
                assert list(record["masks"]) == [] and record["ignore_mask"] == b""
            else:
                instances, ignore = MASKS[image_id]
                assert list(record["masks"]) == [(tree / p).read_bytes() for p in instances]
                assert record["ignore_mask"] == ((tree / ignore).read_bytes() if ignore else b"")


def test_only_the_splits_on_disk_are_prepared(data_dir):
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(tfds_source.dataset_dir(data_dir, "cub"))
    assert set(builder.info.splits) == {"train", "test"}
    with pytest.raises(DatasetError, match="metadata folder for split 'val' not found"):
        tfds_source.load_split(data_dir, "cub", "val")


def test_bboxes_are_normalised_yxyx(data_dir):
    # "a b.jpg" is 40 wide, 30 high, box x0=4, y0=3, x1=20, y1=30:
    # (y0 / h, x0 / w, y1 / h, x1 / w) = (0.1, 0.1, 1.0, 0.5).
    record = _records(data_dir, "train")[0]
    np.testing.assert_array_equal(np.stack(record["bboxes"]),
                                  np.array([[0.1, 0.1, 1.0, 0.5]], np.float32))
    # "b.png" is 33 x 47 with two boxes, the second fractional.
    record = _records(data_dir, "train")[1]
    np.testing.assert_array_equal(
        np.stack(record["bboxes"]),
        np.array([[0, 0, 46 / 47, 32 / 33], [6.25 / 47, 5.5 / 33, 12 / 47, 10 / 33]], np.float32))
    np.testing.assert_allclose(tfds_builder.normalised_bboxes([[4, 3, 20, 30]], (40, 30)),
                               [[0.1, 0.1, 1.0, 0.5]])


def _data_cfg(source: str, tree: Path, data_dir: Path):
    cfg = base_config()
    cfg.data.num_classes = 3
    cfg.data.source = source
    cfg.data.metadata_root, cfg.data.image_root = str(tree / "metadata"), str(tree)
    cfg.data.tfds_data_dir, cfg.data.tfds_name = str(data_dir), "cub"
    validate(cfg)
    return cfg.data


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def test_tfds_batches_equal_folder_batches(tree, data_dir):
    loaded = {source: {split: datasets.load_split(_data_cfg(source, tree, data_dir), split,
                                                  verify_images=True)
                       for split in ("train", "test")}
              for source in ("folder", "tfds")}
    tfds_train, tfds_test = loaded["tfds"]["train"], loaded["tfds"]["test"]
    assert isinstance(tfds_train, tfds_source.TfdsSplit)
    assert tfds_train.image_ids == list(TRAIN) and tfds_test.masks is not None
    folder_train, folder_test = loaded["folder"]["train"], loaded["folder"]["test"]
    assert tfds_train.sizes == folder_train.sizes and tfds_train.labels == folder_train.labels

    def train(meta):
        return train_batches(meta, batch_size=4, resize_size=36, crop_size=28, seed=3)

    # 6 images, batches of 4: batch 3 is in the third epoch.
    for step in (0, 1, 3):
        assert _equal(train(tfds_train)[step], train(folder_train)[step])
    evals = [eval_batches(m, batch_size=2, crop_size=(24, 20)) for m in (tfds_test, folder_test)]
    assert len(evals[0]) == 2
    for step in range(2):
        assert _equal(evals[0][step], evals[1][step])
    for image_id in TEST:
        np.testing.assert_array_equal(md.load_mask(tfds_test, image_id, (24, 20)),
                                      md.load_mask(folder_test, image_id, (24, 20)))
    # h.png: two instances and an ignore mask, so all three values occur.
    assert set(np.unique(md.load_mask(tfds_test, "images/test/h.png", (31, 37)))) == {0, 1, 255}


def test_dropped_images_still_find_their_records(tree, data_dir):
    tfds_meta = md.drop_images(tfds_source.load_split(data_dir, "cub", "train"),
                               ["images/train/b.png"])
    folder_meta = md.drop_images(md.load_split(tree / "metadata", tree, "train"),
                                 ["images/train/b.png"])
    assert isinstance(tfds_meta, tfds_source.TfdsSplit)
    a, b = (eval_batches(m, batch_size=5, crop_size=16, mean=None, std=None)[0]
            for m in (tfds_meta, folder_meta))
    assert _equal(a, b)


def test_reader_pickles_and_reopens(data_dir):
    import pickle

    meta = tfds_source.load_split(data_dir, "cub", "test")
    reader = meta.image_reader()
    again = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(again(2), reader(2))
    assert again(2).shape == (46, 35, 3)


def test_records_out_of_step_with_the_metadata_copy_fail(data_dir, tmp_path):
    copy = tmp_path / "wsol_metadata" / "cub" / "1.0.0"
    shutil.copytree(tfds_source.dataset_dir(data_dir, "cub"), copy)
    ids = copy / tfds_builder.METADATA_COPY / "train" / md.IMAGE_IDS_FILE
    lines = ids.read_text().splitlines()
    ids.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    meta = tfds_source.load_split(tmp_path, "cub", "train")
    # Position 1 now says "a b.jpg", but record 1 is still "b.png".
    with pytest.raises(DatasetError, match=r"record holds image 'images/train/b.png', the "
                                           r"metadata copy says 'images/train/a b.jpg'"):
        meta.image_reader()(1)


def test_corrupt_record_names_the_image(tree, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(tree, root)
    (root / "images/test/h.png").write_bytes(b"not an image")
    tfds_builder.prepare("cars", tmp_path / "out", metadata_root=root / "metadata",
                         image_root=root)
    meta = tfds_source.load_split(tmp_path / "out", "cars", "test")
    bad = md.find_bad_images(meta, num_threads=2)
    assert list(bad) == ["images/test/h.png"]
    assert "corrupt or unreadable image" in bad["images/test/h.png"]
    with pytest.raises(DatasetError, match=r"test\[1\] \(images/test/h.png\)"):
        eval_batches(meta, batch_size=3, crop_size=16)[0]


def test_missing_records_and_config_keys(tmp_path):
    with pytest.raises(DatasetError, match="python -m wsolax.data.tfds_builder --name cub"):
        tfds_source.load_split(tmp_path, "cub", "train")
    cfg = base_config()
    cfg.data.source = "tfds"
    with pytest.raises(ConfigError, match="data.tfds_data_dir"):
        validate(cfg)
    cfg.data.tfds_data_dir = str(tmp_path)
    with pytest.raises(ConfigError, match="data.tfds_name"):
        validate(cfg)
