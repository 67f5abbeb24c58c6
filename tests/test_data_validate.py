"""Bad data is caught before training: the validate command and library, the collecting mode of
the metadata reader, data.bad_images, and image decoding of unusual formats."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from wsolax import datasets
from wsolax.config import ConfigError, load_config
from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_rgb
from wsolax.data.metadata import load_split
from wsolax.data.validate import format_reports, kind_of
from wsolax.datasets import validate_dataset
from wsolax.validate import main as validate_main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/synthetic_cam.py"

# Per split: (name, label, boxes); every image is a 20x16 (w x h) JPEG.
SPLIT_IMAGES = {
    "train": [("t0", 0, ["1,2,10,12"]), ("t1", 1, ["0,0,19,15", "5,5,20,16"]), ("t2", 2, ["3,3,4,4"])],
    "val": [("v0", 0, ["0,0,5,5"]), ("v1", 1, ["1,1,6,6"]), ("v2", 2, ["2,2,7,7"])],
    "test": [("s0", 0, ["0,0,10,10"]), ("s1", 1, ["1,1,11,11"]), ("s2", 2, ["2,2,12,12"])],
}


def _write(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, rows in SPLIT_IMAGES.items():
        ids = [f"img/{split}/{name}.jpg" for name, _, _ in rows]
        for image_id in ids:
            (root / image_id).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / image_id), rng.integers(0, 255, (16, 20, 3), dtype=np.uint8))
        folder = root / "meta" / split
        _write(folder / "image_ids.txt", ids)
        _write(folder / "class_labels.txt", [f"{i},{y}" for i, (_, y, _) in zip(ids, rows)])
        _write(folder / "image_sizes.txt", [f"{i},20,16" for i in ids])
        _write(folder / "localization.txt",
               [f"{i},{b}" for i, (_, _, boxes) in zip(ids, rows) for b in boxes])
    return root


def _overrides(root: Path, *extra: str) -> list[str]:
    return ["--config.data.source=folder", f"--config.data.metadata_root={root / 'meta'}",
            f"--config.data.image_root={root}", "--config.data.num_classes=3",
            "--config.data.num_threads=1", *extra]


def _cfg(root: Path, *extra: str):
    return load_config(CONFIG, _overrides(root, *extra))


def _report(root: Path, *extra: str, decode: bool = False):
    return {r.split: r for r in validate_dataset(_cfg(root, *extra), decode=decode)}


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    _write(path, lines)


def test_valid_dataset_summary_and_exit_code(tmp_path, capsys):
    root = write_dataset(tmp_path)
    assert validate_main(["--config", CONFIG, *_overrides(root), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "split 'train': 3 images, 3 of 3 classes present" in out
    assert "boxes per image: min 1, mean 1.33, max 2" in out  # 4 boxes over 3 images
    assert "split 'test': 3 images, 3 of 3 classes present" in out
    assert "masks: none" in out
    assert out.rstrip().endswith("no problems found")


def test_cli_exit_code_1_on_problems_in_a_subprocess(tmp_path):
    root = write_dataset(tmp_path)
    (root / "img/test/s1.jpg").unlink()
    run = subprocess.run([sys.executable, "-m", "wsolax.validate", "--config", CONFIG,
                          *_overrides(root), "--splits", "test"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    assert "split 'test': 2 images" in run.stdout
    assert "PROBLEM missing file: 1" in run.stdout and "img/test/s1.jpg" in run.stdout
    assert "split 'train'" not in run.stdout
    assert "1 problem(s) found" in run.stdout


def test_cli_exit_code_2_when_the_config_is_wrong(tmp_path, capsys):
    assert validate_main(["--config", CONFIG, "--config.data.bad_images=maybe"]) == 2
    assert "data.bad_images" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="'data.bad_images': must be 'fail' or 'skip'"):
        _cfg(write_dataset(tmp_path), "--config.data.bad_images=sometimes")


def test_several_problems_of_a_file_are_all_reported(tmp_path):
    root = write_dataset(tmp_path)
    loc = root / "meta/test/localization.txt"
    _replace_line(loc, 1, "img/test/s0.jpg,0,0,21,10")  # past the 20 px right edge
    _replace_line(loc, 2, "img/test/s1.jpg,11,1,1,11")  # x1 < x0
    report = _report(root)["test"]
    assert report.images == 1 and report.classes_present == 1  # s2 is the only clean image
    assert list(report.problems) == ["box outside image", "inverted box"]
    assert "localization.txt:1 (id 'img/test/s0.jpg')" in report.problems["box outside image"][0]
    assert "localization.txt:2 (id 'img/test/s1.jpg')" in report.problems["inverted box"][0]
    text = format_reports(list(_report(root).values()))
    assert "PROBLEM box outside image: 1" in text and "2 problem(s) found" in text


def test_label_out_of_range(tmp_path):
    root = write_dataset(tmp_path)
    reports = _report(root, "--config.data.num_classes=2")
    for split, name in (("train", "t2"), ("val", "v2"), ("test", "s2")):
        (message,) = reports[split].problems["label out of range"]
        assert f"class_labels.txt:3 (id 'img/{split}/{name}.jpg'): label 2 is out of range" in message
        assert reports[split].images == 2


def test_duplicate_ids_and_empty_split(tmp_path):
    root = write_dataset(tmp_path)
    _write(root / "meta/val/image_ids.txt", ["img/val/v0.jpg", "img/val/v1.jpg", "img/val/v0.jpg"])
    _write(root / "meta/test/image_ids.txt", ["", " "])
    reports = _report(root)
    assert "image_ids.txt:3 (id 'img/val/v0.jpg'): duplicate id" in \
        reports["val"].problems["duplicate id"][0]
    assert "empty split" in reports["test"].problems["empty split"][0]
    assert not reports["train"].problems


def test_missing_metadata_folder_and_files(tmp_path):
    root = write_dataset(tmp_path)
    shutil.rmtree(root / "meta/val")
    (root / "meta/test/image_sizes.txt").unlink()
    reports = _report(root)
    assert "metadata folder for split 'val' not found" in reports["val"].problems["missing file"][0]
    assert "missing metadata file" in reports["test"].problems["missing file"][0]


def test_ids_missing_from_a_file_or_unknown(tmp_path):
    root = write_dataset(tmp_path)
    _write(root / "meta/train/class_labels.txt", ["img/train/t0.jpg,0", "img/train/t1.jpg,1",
                                                  "img/train/zz.jpg,1"])
    report = _report(root)["train"]
    assert "(id 'img/train/zz.jpg'): id is not listed" in report.problems["id not in image_ids.txt"][0]
    assert "1 image id(s) have no entry, e.g. 'img/train/t2.jpg'" in \
        report.problems["id missing from a file"][0]
    assert report.images == 2


def test_training_split_may_have_no_boxes_but_evaluation_splits_must(tmp_path):
    root = write_dataset(tmp_path)
    (root / "meta/train/localization.txt").unlink()
    (root / "meta/val/localization.txt").unlink()
    reports = _report(root)
    assert not reports["train"].problems and reports["train"].boxes_per_image is None
    assert "missing metadata file" in reports["val"].problems["missing file"][0]
    assert "boxes per image: none" in format_reports([reports["train"]])


def test_truncated_and_corrupt_images_need_decode(tmp_path):
    root = write_dataset(tmp_path)
    path = root / "img/test/s1.jpg"
    path.write_bytes(path.read_bytes()[:300])  # an interrupted copy
    (root / "img/test/s2.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert not _report(root)["test"].problems  # existence only
    problems = _report(root, decode=True)["test"].problems
    assert sorted(problems) == ["undecodable image"]
    assert len(problems["undecodable image"]) == 2
    assert any("img/test/s1.jpg" in m for m in problems["undecodable image"])


def test_bad_images_fail_or_skip_in_training(tmp_path, capsys):
    root = write_dataset(tmp_path)
    path = root / "img/train/t1.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"(?s)1 bad image\(s\) in split 'train'.*t1.jpg"
                                           r".*data.bad_images='skip'"):
        datasets.load_split(_cfg(root).data, "train", verify_images=True)

    cfg = _cfg(root, "--config.data.bad_images=skip")
    meta = datasets.load_split(cfg.data, "train", verify_images=True)
    assert meta.image_ids == ["img/train/t0.jpg", "img/train/t2.jpg"]
    assert set(meta.boxes) == set(meta.labels) == set(meta.sizes) == set(meta.image_ids)
    assert "dropped 1 of 3 image(s) of split 'train'" in capsys.readouterr().out

    # validate reports them as what training will do, not as a problem.
    report = _report(root, "--config.data.bad_images=skip", decode=True)["train"]
    assert not report.problems and "training will drop 1 bad image(s)" in report.notes[0]


def test_image_size_mismatch(tmp_path):
    root = write_dataset(tmp_path)
    _replace_line(root / "meta/val/image_sizes.txt", 2, "img/val/v1.jpg,20,18")
    (message,) = _report(root, decode=True)["val"].problems["size mismatch"]
    assert "img/val/v1.jpg: decoded size 20x16 differs from image_sizes.txt's 20x18" in message


def test_a_wrong_size_that_puts_the_box_outside_is_reported_as_the_size_mismatch(tmp_path):
    # v1's box (1,1,6,6) lies outside a listed 17x4 image; the file is 20x16: the size is wrong.
    root = write_dataset(tmp_path)
    _replace_line(root / "meta/val/image_sizes.txt", 2, "img/val/v1.jpg,17,4")
    report = _report(root)["val"]
    assert "box outside image" not in report.problems
    (message,) = report.problems["size mismatch"]
    assert message.startswith("img/val/v1.jpg: image_sizes.txt says 17x4 but the file is 20x16")
    # A box that is really outside its correctly listed image stays what it is.
    _replace_line(root / "meta/val/image_sizes.txt", 2, "img/val/v1.jpg,20,16")
    _replace_line(root / "meta/val/localization.txt", 2, "img/val/v1.jpg,1,1,26,6")
    assert "box outside image" in _report(root)["val"].problems


def test_a_duplicated_id_leaves_the_other_images_usable(tmp_path):
    root = write_dataset(tmp_path)
    _write(root / "meta/val/image_ids.txt", ["img/val/v0.jpg", "img/val/v1.jpg", "img/val/v2.jpg",
                                             "img/val/v1.jpg"])
    report = _report(root)["val"]
    assert report.images == 3 and len(report.problems["duplicate id"]) == 1
    assert "split 'val': 3 images (those without a problem)" in format_reports([report])


def test_more_boxes_than_max_boxes(tmp_path):
    root = write_dataset(tmp_path)
    (message,) = _report(root, "--config.data.max_boxes=1")["train"].problems[
        "too many boxes for data.max_boxes"]
    assert "img/train/t1.jpg has 2 boxes but data.max_boxes is 1" in message
    assert "--config.data.max_boxes=2" in message


def test_image_in_two_splits(tmp_path):
    root = write_dataset(tmp_path)
    shutil.rmtree(root / "meta/test")
    shutil.copytree(root / "meta/train", root / "meta/test")
    (message,) = _report(root)["test"].problems["image in two splits"]
    assert "3 image(s) of split 'test' are also in split 'train', e.g. img/train/t0.jpg" in message


def test_masks_are_decoded(tmp_path):
    root = write_dataset(tmp_path)
    cv2.imwrite(str(root / "img/test/m0.png"), np.full((16, 20), 255, np.uint8))
    (root / "img/test/m1.png").write_bytes(b"junk")
    _write(root / "meta/test/masks.txt", ["img/test/s0.jpg,img/test/m0.png,",
                                          "img/test/s1.jpg,img/test/m1.png,",
                                          "img/test/s2.jpg,img/test/m0.png,img/test/m0.png"])
    report = _report(root, decode=True)["test"]
    assert report.images_with_masks == 3
    (message,) = report.problems["unreadable mask"]
    assert message.startswith("mask of img/test/s1.jpg:") and "m1.png" in message


@pytest.mark.parametrize("message, kind", [
    ("a.txt:3 (id 'duplicate.jpg'): label 7 is out of range, must be in [0, 3)", "label out of range"),
    ("a.txt:2 (id 'x'): duplicate id (first on line 1)", "duplicate id"),
    ("/r/x.jpg: corrupt or unreadable image /r/x.jpg: truncated", "undecodable image"),
    ("something new", "other"),
])
def test_problem_kinds_ignore_quoted_user_text(message, kind):
    assert kind_of(message) == kind


def test_collecting_mode_keeps_the_good_images(tmp_path):
    root = write_dataset(tmp_path)
    loc = root / "meta/train/localization.txt"
    _replace_line(loc, 3, "img/train/t1.jpg,5,5,25,16")  # t1's second box is outside
    with pytest.raises(DatasetError, match="localization.txt:3"):
        load_split(root / "meta", root, "train")  # default: the first problem raises
    problems: list[str] = []
    meta = load_split(root / "meta", root, "train", problems=problems)
    assert len(problems) == 1 and "localization.txt:3" in problems[0]
    # An image keeping only some of its boxes would be scored against the wrong ground truth.
    assert meta.image_ids == ["img/train/t0.jpg", "img/train/t2.jpg"]
    assert set(meta.boxes) == set(meta.sizes) == {"img/train/t0.jpg", "img/train/t2.jpg"}


# --- decoding of unusual image formats (wsolax.data.image_io.decode_rgb) -------------------------

RGB = np.array([[[200, 30, 60], [20, 180, 90]]], np.uint8).repeat(8, 0).repeat(8, 1)  # 8x16


@pytest.mark.parametrize("mode, suffix", [("CMYK", ".jpg"), ("L", ".jpg"), ("L", ".png"),
                                          ("RGBA", ".png"), ("P", ".png"), ("I;16", ".png")])
def test_decode_rgb_converts_every_mode_to_rgb(tmp_path, mode, suffix):
    path = tmp_path / f"image{suffix}"
    if mode == "I;16":  # 16-bit greyscale: value v * 257 must come back as v
        Image.fromarray(np.full((8, 16), 100 * 257, np.uint16)).save(path)
        expected = np.full((8, 16, 3), 100, np.uint8)
    elif mode == "L":
        Image.fromarray(np.full((8, 16), 77, np.uint8)).save(path, quality=100)
        expected = np.full((8, 16, 3), 77, np.uint8)
    elif mode == "RGBA":  # alpha is dropped, not blended
        Image.fromarray(np.dstack([RGB, np.full((8, 16), 10, np.uint8)])).save(path)
        expected = RGB
    elif mode == "P":
        Image.fromarray(RGB).quantize(colors=2).save(path)
        expected = RGB
    else:  # CMYK JPEG (ImageNet has some): colours survive the round trip
        Image.fromarray(RGB).convert("CMYK").save(path, quality=100)
        expected = RGB
    image = decode_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (8, 16, 3)
    # JPEG is lossy: a few levels of error at flat colours; the lossless formats are exact.
    tolerance = 4 if suffix == ".jpg" else 0
    assert np.abs(image.astype(int) - expected).max() <= tolerance
