"""Converters from the original dataset layouts (CUB, ILSVRC, OpenImages30k, Stanford Cars) to the
metadata layout, on small fake trees written in each layout. Expected metadata is written by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolax.data.errors import DatasetError
from wsolax.data.metadata import load_mask, load_split
from wsolax.data.sources import (
    convert_cars, convert_cub, convert_ilsvrc, convert_openimages, write_prepared)
from wsolax.prepare import main as prepare_main


def _write(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _image(path: Path, w: int, h: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = _lines(path)
    lines[lineno - 1] = text
    _write(path, lines)


# --- CUB-200-2011 -------------------------------------------------------------------------------

# Class 1 images are 80x60, class 2 images 64x48; images 3 and 6 are the official test images.
CUB_IMAGES = ["001.A/a1.jpg", "001.A/a2.jpg", "001.A/a3.jpg",
              "002.B/b1.jpg", "002.B/b2.jpg", "002.B/b3.jpg"]
# Image 3: 10.3 + 29.6 is 39.900000000000006 in binary floating point; the source means 39.9.
CUB_BOXES = ["1 1.0 2.0 3.0 4.0", "2 5.0 5.0 10.0 10.0", "3 10.3 20.0 29.6 40.0",
             "4 0.0 0.0 64.0 48.0", "5 1.0 1.0 2.0 2.0", "6 0.5 1.5 63.5 46.5"]


def write_cub(root: Path, segmentations: bool = False) -> Path:
    cub = root / "CUB_200_2011"
    for k, rel in enumerate(CUB_IMAGES):
        _image(cub / "images" / rel, *((80, 60) if rel.startswith("001") else (64, 48)), seed=k)
    _write(cub / "images.txt", [f"{k} {rel}" for k, rel in enumerate(CUB_IMAGES, start=1)])
    _write(cub / "image_class_labels.txt", ["1 1", "2 1", "3 1", "4 2", "5 2", "6 2"])
    _write(cub / "train_test_split.txt", ["1 1", "2 1", "3 0", "4 1", "5 1", "6 0"])
    _write(cub / "bounding_boxes.txt", CUB_BOXES)
    if segmentations:
        for rel in CUB_IMAGES:
            w, h = (80, 60) if rel.startswith("001") else (64, 48)
            mask = np.zeros((h, w), np.uint8)
            mask[10:20, 10:30] = 255
            path = cub / "segmentations" / Path(rel).with_suffix(".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), mask)
    return cub


def test_cub_converts_with_val_drawn_from_train(tmp_path):
    cub = write_cub(tmp_path)
    prepared = convert_cub(cub, val_per_class=1, seed=3)
    out = write_prepared(prepared, tmp_path / "meta")

    test = out / "test"
    assert _lines(test / "image_ids.txt") == ["001.A/a3.jpg", "002.B/b3.jpg"]
    assert _lines(test / "class_labels.txt") == ["001.A/a3.jpg,0", "002.B/b3.jpg,1"]
    assert _lines(test / "image_sizes.txt") == ["001.A/a3.jpg,80,60", "002.B/b3.jpg,64,48"]
    # x0=x, y0=y, x1=x+w, y1=y+h
    assert 10.3 + 29.6 != 39.9  # why the converter adds in decimal
    assert _lines(test / "localization.txt") == ["001.A/a3.jpg,10.3,20,39.9,60",
                                                 "002.B/b3.jpg,0.5,1.5,64,48"]
    assert not (test / "masks.txt").exists()

    train, val = (set(_lines(out / s / "image_ids.txt")) for s in ("train", "val"))
    assert train | val == {"001.A/a1.jpg", "001.A/a2.jpg", "002.B/b1.jpg", "002.B/b2.jpg"}
    assert not train & val and len(val) == 2
    assert {i.split("/")[0] for i in val} == {"001.A", "002.B"}  # one per class
    boxes = {"001.A/a1.jpg": "1,2,4,6", "001.A/a2.jpg": "5,5,15,15",
             "002.B/b1.jpg": "0,0,64,48", "002.B/b2.jpg": "1,1,3,3"}
    for split, ids in (("train", train), ("val", val)):
        assert set(_lines(out / split / "localization.txt")) == {f"{i},{boxes[i]}" for i in ids}

    info = json.loads((out / "prepare.json").read_text())
    assert info["dataset"] == "cub" and info["splits"] == {"train": 2, "val": 2, "test": 2}
    assert info["num_classes"] == 2  # the classes found in this 2-class tree, not CUB's 200
    assert any("drawn from the official train set" in n for n in info["notes"])

    meta = load_split(out, cub / "images", "test", num_classes=200)
    np.testing.assert_array_equal(meta.boxes["002.B/b3.jpg"], [[0.5, 1.5, 64, 48]])

    # The draw depends only on the seed.
    again = convert_cub(cub, val_per_class=1, seed=3).splits["val"].image_ids
    assert set(again) == val


def test_cub_segmentations_become_masks(tmp_path):
    cub = write_cub(tmp_path, segmentations=True)
    out = write_prepared(convert_cub(cub, val_per_class=1), tmp_path / "meta")
    assert _lines(out / "test" / "masks.txt") == [
        "001.A/a3.jpg,../segmentations/001.A/a3.png,",
        "002.B/b3.jpg,../segmentations/002.B/b3.png,"]
    assert (out / "val" / "masks.txt").exists() and not (out / "train" / "masks.txt").exists()
    meta = load_split(out, cub / "images", "test")
    mask = load_mask(meta, "001.A/a3.jpg", (60, 80))
    assert mask[15, 20] == 1 and mask[0, 0] == 0 and mask.sum() == 10 * 20


def test_cub_val_from_benchmark_metadata(tmp_path):
    cub = write_cub(tmp_path)
    _image(cub / "images/001.A/v1.jpg", 40, 30)
    bench = tmp_path / "bench" / "val"
    _write(bench / "image_ids.txt", ["001.A/v1.jpg"])
    _write(bench / "class_labels.txt", ["001.A/v1.jpg,0"])
    _write(bench / "image_sizes.txt", ["001.A/v1.jpg,40,30"])
    _write(bench / "localization.txt", ["001.A/v1.jpg,1,1,39,29"])
    prepared = convert_cub(cub, val_from=tmp_path / "bench")
    assert prepared.splits["val"].image_ids == ["001.A/v1.jpg"]
    assert prepared.splits["train"].image_ids == [
        "001.A/a1.jpg", "001.A/a2.jpg", "002.B/b1.jpg", "002.B/b2.jpg"]  # all official train
    out = write_prepared(prepared, tmp_path / "meta")
    assert _lines(out / "val" / "localization.txt") == ["001.A/v1.jpg,1,1,39,29"]

    # A val image that is also a test image would choose the threshold on test.
    _write(bench / "image_ids.txt", ["001.A/a3.jpg"])
    _write(bench / "class_labels.txt", ["001.A/a3.jpg,0"])
    _write(bench / "image_sizes.txt", ["001.A/a3.jpg,80,60"])
    _write(bench / "localization.txt", ["001.A/a3.jpg,1,1,39,29"])
    with pytest.raises(DatasetError, match="also in test"):
        convert_cub(cub, val_from=bench)


@pytest.mark.parametrize("file, lineno, text, message", [
    ("bounding_boxes.txt", 2, "2 5.0 5.0 -10.0 10.0", r"bounding_boxes.txt:2: negative box width"),
    ("bounding_boxes.txt", 3, "3 70.0 20.0 30.0 40.0",
     r"bounding_boxes.txt:3 \(001.A/a3.jpg\): box \(70, 20, 100, 60\) lies outside the 80x60"),
    ("bounding_boxes.txt", 1, "1 1.0 2.0 3.0", r"bounding_boxes.txt:1: expected 5 fields"),
    ("image_class_labels.txt", 4, "4 201", r"image_class_labels.txt:4: class '201' is out of range"),
    ("image_class_labels.txt", 1, "1 0", r"image_class_labels.txt:1: class '0' is out of range"),
    ("images.txt", 2, "2 001.A/a1.jpg", r"images.txt:2: image '001.A/a1.jpg' listed twice"),
    ("images.txt", 5, "5 002.B/gone.jpg", r"images.txt:5: image file not found"),
    ("train_test_split.txt", 1, "1 2", r"train_test_split.txt:1: is_training_image must be 0 or 1"),
    ("image_class_labels.txt", 3, "2 1", r"duplicate image id 2 in image_class_labels.txt"),
])
def test_cub_bad_annotations_name_file_and_line(tmp_path, file, lineno, text, message):
    cub = write_cub(tmp_path)
    _replace_line(cub / file, lineno, text)
    with pytest.raises(DatasetError, match=message):
        convert_cub(cub, val_per_class=1)


def test_cub_split_with_no_test_image(tmp_path):
    cub = write_cub(tmp_path)
    _write(cub / "train_test_split.txt", ["1 1", "2 1", "3 1", "4 1", "5 1", "6 1"])
    with pytest.raises(DatasetError, match="no image is marked test"):
        convert_cub(cub, val_per_class=1)


def test_cub_val_draw_needs_enough_training_images(tmp_path):
    with pytest.raises(DatasetError, match="class 0 has 2 image.*too few to draw 2"):
        convert_cub(write_cub(tmp_path), val_per_class=2)


def test_cub_unreadable_image_fails_or_is_skipped(tmp_path):
    cub = write_cub(tmp_path)
    (cub / "images/002.B/b3.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="unreadable image"):
        convert_cub(cub, val_per_class=1)
    prepared = convert_cub(cub, val_per_class=1, bad_images="skip")
    assert prepared.splits["test"].image_ids == ["001.A/a3.jpg"]
    assert any("skipped 1 unreadable image" in n for n in prepared.notes)


def test_prepare_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    cub = write_cub(tmp_path)
    out = tmp_path / "meta"
    args = ["cub", "--root", str(cub), "--out", str(out), "--val-per-class", "1", "--seed", "1"]
    assert prepare_main(args) == 0
    printed = capsys.readouterr().out
    assert "test: 2 images, 2 classes, 2 boxes (at most 1 per image)" in printed
    assert f"--config.data.metadata_root={out.resolve()}" in printed
    assert f"--config.data.image_root={(cub / 'images').resolve()}" in printed
    assert "python train.py --config configs/cub_adl_resnet50.py" in printed
    assert "python -m wsolax.validate" in printed
    assert "--config.data.num_classes=2" in printed  # a 2-class tree: the config says 200
    assert prepare_main(args) == 2
    assert "already holds metadata" in capsys.readouterr().err
    assert prepare_main(args + ["--force"]) == 0
    assert prepare_main(["cub", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2


# --- ILSVRC 2012 --------------------------------------------------------------------------------

def _voc(path: Path, w: int, h: int, objects) -> None:
    objs = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{path.stem}</filename><size><width>{w}</width>"
                    f"<height>{h}</height><depth>3</depth></size>{objs}</annotation>")


# Val image k: class, size (w, h), boxes.
ILSVRC_VAL = {
    1: ("n02", (50, 40), [(1, 2, 30, 40), (5, 6, 7, 8)]),
    2: ("n01", (40, 50), [(0, 0, 39, 49)]),
    3: ("n01", (30, 30), [(10, 10, 20, 20)]),
    4: ("n02", (30, 20), [(3, 4, 5, 6)]),
}


def write_ilsvrc(root: Path, nested_val: bool = False) -> Path:
    for wnid, names in (("n01", ["n01_1.JPEG", "n01_2.JPEG"]), ("n02", ["n02_7.JPEG"])):
        for k, name in enumerate(names):
            _image(root / "train" / wnid / name, 32 + k, 24, seed=k)
    for k, (wnid, (w, h), boxes) in ILSVRC_VAL.items():
        stem = f"ILSVRC2012_val_{k:08d}"
        folder = root / "val" / wnid if nested_val else root / "val"
        _image(folder / f"{stem}.JPEG", w, h, seed=k)
        _voc(root / "val_bbox" / f"{stem}.xml", w, h, [(wnid, b) for b in boxes])
    return root


@pytest.mark.parametrize("nested_val", [False, True])
def test_ilsvrc_converts(tmp_path, nested_val):
    root = write_ilsvrc(tmp_path / "ILSVRC", nested_val)
    out = write_prepared(convert_ilsvrc(root, val_per_class=1, seed=0), tmp_path / "meta")

    train = out / "train"
    assert _lines(train / "image_ids.txt") == [
        "train/n01/n01_1.JPEG", "train/n01/n01_2.JPEG", "train/n02/n02_7.JPEG"]
    assert _lines(train / "class_labels.txt") == [
        "train/n01/n01_1.JPEG,0", "train/n01/n01_2.JPEG,0", "train/n02/n02_7.JPEG,1"]
    assert _lines(train / "image_sizes.txt") == [
        "train/n01/n01_1.JPEG,32,24", "train/n01/n01_2.JPEG,33,24", "train/n02/n02_7.JPEG,32,24"]
    assert not (train / "localization.txt").exists()  # image labels only

    def vid(k):
        return f"val/{ILSVRC_VAL[k][0]}/ILSVRC2012_val_{k:08d}.JPEG" if nested_val else \
            f"val/ILSVRC2012_val_{k:08d}.JPEG"

    val, test = (_lines(out / s / "image_ids.txt") for s in ("val", "test"))
    assert sorted(val + test) == sorted(vid(k) for k in ILSVRC_VAL)
    assert len(val) == 2 and {ILSVRC_VAL[int(i[-10:-5])][0] for i in val} == {"n01", "n02"}
    expected = {
        f"{vid(1)},1,2,30,40", f"{vid(1)},5,6,7,8", f"{vid(2)},0,0,39,49",
        f"{vid(3)},10,10,20,20", f"{vid(4)},3,4,5,6"}
    got = _lines(out / "val" / "localization.txt") + _lines(out / "test" / "localization.txt")
    assert set(got) == expected and len(got) == 5
    sizes = _lines(out / "val" / "image_sizes.txt") + _lines(out / "test" / "image_sizes.txt")
    assert set(sizes) == {f"{vid(1)},50,40", f"{vid(2)},40,50", f"{vid(3)},30,30",
                          f"{vid(4)},30,20"}
    labels = _lines(out / "val" / "class_labels.txt") + _lines(out / "test" / "class_labels.txt")
    assert set(labels) == {f"{vid(1)},1", f"{vid(2)},0", f"{vid(3)},0", f"{vid(4)},1"}


def test_ilsvrc_train_without_boxes_feeds_the_training_pipeline(tmp_path):
    from wsolax import datasets
    from wsolax.config import base_config
    from wsolax.data.pipeline import train_batches

    root = write_ilsvrc(tmp_path / "ILSVRC")
    out = write_prepared(convert_ilsvrc(root, val_per_class=1), tmp_path / "meta")
    cfg = base_config().data
    cfg.source, cfg.metadata_root, cfg.image_root = "folder", str(out), str(root)
    cfg.num_classes = 2
    meta = datasets.load_split(cfg, "train", verify_images=True)
    assert meta.max_boxes == 0 and meta.boxes["train/n02/n02_7.JPEG"].shape == (0, 4)
    batch = train_batches(meta, batch_size=2, resize_size=20, crop_size=16, seed=0, max_boxes=4,
                          process_index=0, process_count=1)[0]
    assert batch["image"].shape == (2, 16, 16, 3) and list(batch["num_boxes"]) == [0, 0]
    with pytest.raises(DatasetError, match="missing metadata file .*localization.txt"):
        (out / "test" / "localization.txt").unlink()
        datasets.load_split(cfg, "test")  # evaluation splits still need their boxes


def test_ilsvrc_with_val_from_keeps_all_of_val_as_test(tmp_path):
    root = write_ilsvrc(tmp_path / "ILSVRC")
    _image(root / "val2/0/0.jpeg", 20, 20)
    bench = tmp_path / "bench" / "val"
    _write(bench / "image_ids.txt", ["val2/0/0.jpeg"])
    _write(bench / "class_labels.txt", ["val2/0/0.jpeg,0"])
    _write(bench / "image_sizes.txt", ["val2/0/0.jpeg,20,20"])
    _write(bench / "localization.txt", ["val2/0/0.jpeg,2,2,18,18"])
    prepared = convert_ilsvrc(root, val_from=bench)
    assert prepared.splits["val"].image_ids == ["val2/0/0.jpeg"]
    assert len(prepared.splits["test"]) == 4


@pytest.mark.parametrize("change, message", [
    (lambda r: _voc(r / "val_bbox/ILSVRC2012_val_00000002.xml", 40, 50,
                    [("n01", (0, 0, 10, 10)), ("n02", (1, 1, 5, 5))]),
     r"ILSVRC2012_val_00000002.xml: objects of 2 classes \(n01, n02\)"),
    (lambda r: _voc(r / "val_bbox/ILSVRC2012_val_00000003.xml", 30, 30, [("n01", (20, 10, 10, 20))]),
     r"ILSVRC2012_val_00000003.xml \(object 1\): inverted box"),
    (lambda r: _voc(r / "val_bbox/ILSVRC2012_val_00000003.xml", 30, 30, [("n01", (10, 10, 31, 20))]),
     r"ILSVRC2012_val_00000003.xml \(object 1\): box \(10, 10, 31, 20\) lies outside the 30x30"),
    (lambda r: _voc(r / "val_bbox/ILSVRC2012_val_00000004.xml", 30, 21, [("n02", (3, 4, 5, 6))]),
     r"ILSVRC2012_val_00000004.JPEG: image is 30x20 but its XML says 30x21"),
    (lambda r: _voc(r / "val_bbox/ILSVRC2012_val_00000004.xml", 30, 20, [("n09", (3, 4, 5, 6))]),
     r"ILSVRC2012_val_00000004.xml: class n09 has no folder"),
    (lambda r: (r / "val_bbox/ILSVRC2012_val_00000001.xml").unlink(),
     r"ILSVRC2012_val_00000001.JPEG: no box file ILSVRC2012_val_00000001.xml"),
    (lambda r: (r / "val/ILSVRC2012_val_00000001.JPEG").unlink(),
     r"ILSVRC2012_val_00000001.xml: its image ILSVRC2012_val_00000001.JPEG is missing"),
    (lambda r: (r / "val_bbox/ILSVRC2012_val_00000002.xml").write_text("<annotation>"),
     r"ILSVRC2012_val_00000002.xml: not a readable VOC annotation"),
    (lambda r: (r / "train/n03").mkdir(), r"train/n03: class folder has no images"),
])
def test_ilsvrc_bad_data_is_reported(tmp_path, change, message):
    root = write_ilsvrc(tmp_path / "ILSVRC")
    change(root)
    with pytest.raises(DatasetError, match=message):
        convert_ilsvrc(root, val_per_class=1)


def test_ilsvrc_finds_the_bbox_dir_or_asks_for_it(tmp_path):
    root = write_ilsvrc(tmp_path / "ILSVRC")
    (root / "val_bbox").rename(tmp_path / "boxes")
    with pytest.raises(DatasetError, match="pass --bbox-dir"):
        convert_ilsvrc(root, val_per_class=1)
    assert len(convert_ilsvrc(root, val_per_class=1, bbox_dir=tmp_path / "boxes").splits["test"]) == 2


# --- OpenImages30k ------------------------------------------------------------------------------

def _mask(path: Path, w: int, h: int, rect=None) -> None:
    mask = np.zeros((h, w), np.uint8)
    if rect is not None:
        x0, y0, x1, y1 = rect
        mask[y0:y1, x0:x1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def write_openimages(root: Path) -> Path:
    """Two classes; val and test images 40x30 with masks as the benchmark ships them."""
    meta = root / "metadata"
    for k, (split, cls) in enumerate([("train", "c0"), ("train", "c1"), ("val", "c0"),
                                      ("val", "c1"), ("test", "c0"), ("test", "c1")]):
        _image(root / split / cls / f"i{k}.jpg", 40, 30, seed=k)
    _write(meta / "train/image_ids.txt", ["train/c0/i0.jpg", "train/c1/i1.jpg"])
    _write(meta / "train/class_labels.txt", ["train/c0/i0.jpg,0", "train/c1/i1.jpg,1"])
    for split, ids in (("val", ["val/c0/i2.jpg", "val/c1/i3.jpg"]),
                       ("test", ["test/c0/i4.jpg", "test/c1/i5.jpg"])):
        _write(meta / split / "image_ids.txt", ids)
        _write(meta / split / "class_labels.txt", [f"{ids[0]},0", f"{ids[1]},1"])
        a, b = (i[:-4] for i in ids)
        _mask(root / f"{a}_m1.png", 40, 30, (10, 5, 20, 15))
        _mask(root / f"{a}_m2.png", 20, 15, (0, 0, 5, 5))  # half resolution
        _mask(root / f"{a}_ignore.png", 40, 30, (30, 20, 40, 30))
        _mask(root / f"{b}_m1.png", 40, 30, (0, 0, 40, 30))
        # Only an image's first line names its ignore mask, as in the benchmark's files.
        _write(meta / split / "localization.txt", [
            f"{ids[0]},{a}_m1.png,{a}_ignore.png", f"{ids[0]},{a}_m2.png,", f"{ids[1]},{b}_m1.png,"])
    return root


def test_openimages_converts(tmp_path):
    root = write_openimages(tmp_path / "OpenImages")
    prepared = convert_openimages(root)
    out = write_prepared(prepared, tmp_path / "meta")
    test = out / "test"
    assert _lines(test / "image_ids.txt") == ["test/c0/i4.jpg", "test/c1/i5.jpg"]
    assert _lines(test / "image_sizes.txt") == ["test/c0/i4.jpg,40,30", "test/c1/i5.jpg,40,30"]
    assert _lines(test / "masks.txt") == [
        "test/c0/i4.jpg,test/c0/i4_m1.png,test/c0/i4_ignore.png",
        "test/c0/i4.jpg,test/c0/i4_m2.png,test/c0/i4_ignore.png",
        "test/c1/i5.jpg,test/c1/i5_m1.png,"]
    # One box per instance mask; the half-size mask's box is scaled by 2.
    assert _lines(test / "localization.txt") == [
        "test/c0/i4.jpg,10,5,20,15", "test/c0/i4.jpg,0,0,10,10", "test/c1/i5.jpg,0,0,40,30"]
    assert not (out / "train" / "localization.txt").exists()
    assert not (out / "train" / "masks.txt").exists()
    assert _lines(out / "train" / "image_sizes.txt") == ["train/c0/i0.jpg,40,30",
                                                         "train/c1/i1.jpg,40,30"]
    assert any("test: 1 mask(s) differ in size" in n for n in prepared.notes)  # m2

    meta = load_split(out, root, "test", num_classes=100)
    mask = load_mask(meta, "test/c0/i4.jpg", (30, 40))
    assert mask[10, 15] == 1 and mask[2, 2] == 1 and mask[25, 35] == 255 and mask[25, 5] == 0


def test_openimages_keeps_n_val_images_per_class_and_reads_image_sizes(tmp_path):
    root = write_openimages(tmp_path / "OpenImages")
    _write(root / "metadata/val/image_sizes.txt", ["val/c0/i2.jpg,40,30", "val/c1/i3.jpg,40,30"])
    prepared = convert_openimages(root, val_per_class=1)
    assert prepared.splits["val"].image_ids == ["val/c0/i2.jpg", "val/c1/i3.jpg"]
    _write(root / "metadata/val/image_sizes.txt", ["val/c0/i2.jpg,40,31", "val/c1/i3.jpg,40,30"])
    with pytest.raises(DatasetError, match=r"image_sizes.txt:1: says 40x31, the image is 40x30"):
        convert_openimages(root)


@pytest.mark.parametrize("change, message", [
    (lambda r: (r / "test/c0/i4_m2.png").unlink(), r"i4_m2.png: mask file of test/c0/i4.jpg not found"),
    (lambda r: (r / "test/c0/i4_m2.png").write_bytes(b"junk"), r"i4_m2.png: unreadable mask"),
    (lambda r: _mask(r / "test/c0/i4_m2.png", 30, 30, (0, 0, 5, 5)),
     r"mask is 30x30, its image test/c0/i4.jpg is 40x30 \(another shape\)"),
    (lambda r: _mask(r / "test/c1/i5_m1.png", 40, 30), r"every instance mask of test/c1/i5.jpg is empty"),
    (lambda r: _write(r / "metadata/test/class_labels.txt", ["test/c0/i4.jpg,0", "test/c1/i5.jpg,100"]),
     r"test/class_labels.txt:2: label '100' is out of range"),
    (lambda r: _write(r / "metadata/train/image_ids.txt", ["train/c0/i0.jpg", "train/c0/i0.jpg"]),
     r"train/image_ids.txt:2: duplicate id 'train/c0/i0.jpg'"),
    (lambda r: (r / "train/c1/i1.jpg").unlink(), r"image file not found: .*train/c1/i1.jpg"),
    (lambda r: _write(r / "metadata/val/localization.txt", [
        "val/c0/i2.jpg,val/c0/i2_m1.png,val/c0/i2_ignore.png", "val/c0/i2.jpg,val/c0/i2_m2.png,x.png",
        "val/c1/i3.jpg,val/c1/i3_m1.png,"]), r"second ignore mask 'x.png'"),
    (lambda r: _write(r / "metadata/val/localization.txt", ["val/c0/i2.jpg,val/c0/i2_m1.png,"]),
     r"no mask for 'val/c1/i3.jpg'"),
])
def test_openimages_bad_data_is_reported(tmp_path, change, message):
    root = write_openimages(tmp_path / "OpenImages")
    change(root)
    with pytest.raises(DatasetError, match=message):
        convert_openimages(root)


def test_openimages_mask_root_elsewhere(tmp_path):
    root = write_openimages(tmp_path / "OpenImages")
    masks = tmp_path / "masks"
    for path in sorted(root.rglob("*.png")):
        target = masks / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    out = write_prepared(convert_openimages(root, mask_root=masks), tmp_path / "meta")
    assert _lines(out / "test" / "masks.txt")[2] == "test/c1/i5.jpg,../masks/test/c1/i5_m1.png,"
    assert load_split(out, root, "test").masks is not None  # the files are found


# --- Stanford Cars ------------------------------------------------------------------------------

CARS = {  # split -> [(fname, (x1, y1, x2, y2), class)]; every image is 64x48
    "train": [("00001.jpg", (1, 2, 30, 40), 1), ("00002.jpg", (0, 0, 64, 48), 1),
              ("00003.jpg", (5, 5, 6, 6), 196), ("00004.jpg", (10, 11, 12, 13), 196)],
    "test": [("00001.jpg", (3, 3, 33, 33), 196), ("00002.jpg", (7, 8, 9, 10), 1)],
}


def write_cars(root: Path, csv: bool = True) -> Path:
    for split, rows in CARS.items():
        for k, (fname, _, _) in enumerate(rows):
            _image(root / f"cars_{split}" / fname, 64, 48, seed=k)
    if csv:
        _write(root / "anno_train.csv", [f"{f},{','.join(map(str, b))},{c}" for f, b, c in CARS["train"]])
        _write(root / "anno_test.csv", ["fname,x1,y1,x2,y2,class"]
               + [f"{f},{','.join(map(str, b))},{c}" for f, b, c in CARS["test"]])
    return root


def _check_cars(out: Path) -> None:
    test = out / "test"
    assert _lines(test / "image_ids.txt") == ["cars_test/00001.jpg", "cars_test/00002.jpg"]
    assert _lines(test / "class_labels.txt") == ["cars_test/00001.jpg,195", "cars_test/00002.jpg,0"]
    assert _lines(test / "image_sizes.txt") == ["cars_test/00001.jpg,64,48", "cars_test/00002.jpg,64,48"]
    assert _lines(test / "localization.txt") == ["cars_test/00001.jpg,3,3,33,33",
                                                 "cars_test/00002.jpg,7,8,9,10"]
    train, val = (_lines(out / s / "image_ids.txt") for s in ("train", "val"))
    assert sorted(train + val) == [f"cars_train/0000{k}.jpg" for k in range(1, 5)]
    assert len(val) == 2 and {_lines(out / "val" / "class_labels.txt")[k][-2:] for k in (0, 1)} \
        == {",0", "95"}


def test_cars_from_csv(tmp_path):
    root = write_cars(tmp_path / "cars")
    _check_cars(write_prepared(convert_cars(root, val_per_class=1), tmp_path / "meta"))


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None,
                    reason="scipy is optional; the .mat path needs it, the CSV path is tested")
def test_cars_from_mat(tmp_path):
    from scipy.io import savemat

    root = write_cars(tmp_path / "cars", csv=False)
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    for split, name in (("train", "devkit/cars_train_annos.mat"),
                        ("test", "cars_test_annos_withlabels.mat")):
        records = np.zeros(len(CARS[split]), dtype=[(f, "O") for f in fields])
        for k, (fname, box, cls) in enumerate(CARS[split]):
            records[k] = (*(np.uint16(v) for v in box), np.uint8(cls), fname)
        (root / name).parent.mkdir(exist_ok=True)
        savemat(root / name, {"annotations": records})
    _check_cars(write_prepared(convert_cars(root, val_per_class=1), tmp_path / "meta"))


def test_cars_mat_without_scipy_says_what_to_do(tmp_path, monkeypatch):
    import sys

    root = write_cars(tmp_path / "cars", csv=False)
    for name in ("devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat"):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import fails as if not installed
    with pytest.raises(DatasetError, match=r"needs scipy: `pip install scipy`, or provide the CSV"):
        convert_cars(root)


@pytest.mark.parametrize("lineno, text, message", [
    (1, "00001.jpg,1,2,30,40,197", r"anno_train.csv:1: class 197 is out of range"),
    (2, "00002.jpg,30,2,1,40,1", r"anno_train.csv:2 \(cars_train/00002.jpg\): inverted box"),
    (2, "00002.jpg,0,0,65,48,1", r"anno_train.csv:2 \(cars_train/00002.jpg\): box .* outside the 64x48"),
    (3, "00001.jpg,5,5,6,6,196", r"anno_train.csv:3: 00001.jpg annotated twice"),
    (3, "00009.jpg,5,5,6,6,196", r"anno_train.csv:3: image file not found"),
    (4, "00004.jpg,10,11,12", r"anno_train.csv:4: expected 6 fields"),
])
def test_cars_bad_annotations_name_file_and_line(tmp_path, lineno, text, message):
    root = write_cars(tmp_path / "cars")
    _replace_line(root / "anno_train.csv", lineno, text)
    with pytest.raises(DatasetError, match=message):
        convert_cars(root, val_per_class=1)


def test_cars_without_annotations(tmp_path):
    root = write_cars(tmp_path / "cars", csv=False)
    with pytest.raises(DatasetError, match="no Stanford Cars annotations"):
        convert_cars(root)


def test_openimages_config_follows_the_benchmark_protocol(monkeypatch):
    from wsolax.config import load_config

    monkeypatch.setenv("WSOLAX_OPENIMAGES_METADATA", "/m")  # the names prepare prints
    monkeypatch.setenv("WSOLAX_OPENIMAGES_IMAGES", "/i")
    cfg = load_config("configs/openimages_cam_resnet50.py")
    assert (cfg.data.metadata_root, cfg.data.image_root) == ("/m", "/i")
    assert cfg.data.num_classes == 100 and cfg.model.backbone == "resnet50"
    assert cfg.model.inserts == ()  # CAM: no attention-dropout layer
    assert (cfg.train.epochs, cfg.optim.schedule, cfg.optim.decay_epochs) == (10, "step", 3)
    assert cfg.data.max_boxes >= 13  # the benchmark's val has an image with 13 instance masks


def test_cub_incomplete_segmentations_are_reported_or_can_be_ignored(tmp_path):
    cub = write_cub(tmp_path, segmentations=True)
    (cub / "segmentations/002.B/b3.png").unlink()
    with pytest.raises(DatasetError, match=r"no segmentation 002.B/b3.png"):
        convert_cub(cub, val_per_class=1)
    assert prepare_main(["cub", "--root", str(cub), "--out", str(tmp_path / "m"),
                         "--val-per-class", "1", "--no-segmentations"]) == 0
    assert not (tmp_path / "m/test/masks.txt").exists()
