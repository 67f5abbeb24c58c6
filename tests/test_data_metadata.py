"""Reading and validating the wsolevaluation metadata layout."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolax.data.errors import DatasetError
from wsolax.data.metadata import load_mask, load_split, verify_images

# Three 20x16 (w x h) images; image b has two boxes; image c is class 2.
IMAGES = {"img/a.png": 0, "img/b.png": 1, "img/c.png": 2}
BOXES = [("img/a.png", "1,2,10,12"), ("img/b.png", "0,0,19,15"),
         ("img/b.png", "5,5,20,16"), ("img/c.png", "3,3,4,4")]


def _write(path: Path, lines) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def write_tree(root: Path, split: str = "train") -> Path:
    """A valid dataset: images under root, metadata under root/meta/<split>."""
    folder = root / "meta" / split
    folder.mkdir(parents=True)
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    for image_id in IMAGES:
        cv2.imwrite(str(root / image_id), rng.integers(0, 255, (16, 20, 3), dtype=np.uint8))
    _write(folder / "image_ids.txt", IMAGES)
    _write(folder / "class_labels.txt", [f"{i},{y}" for i, y in IMAGES.items()])
    _write(folder / "image_sizes.txt", [f"{i},20,16" for i in IMAGES])
    _write(folder / "localization.txt", [f"{i},{b}" for i, b in BOXES])
    return folder


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    _write(path, lines)


def _load(root: Path, **kwargs):
    return load_split(root / "meta", root, "train", **kwargs)


def test_valid_tree_parses(tmp_path):
    write_tree(tmp_path)
    meta = _load(tmp_path, num_classes=5)
    assert meta.image_ids == list(IMAGES)
    assert meta.labels == IMAGES
    assert meta.sizes["img/a.png"] == (20, 16)
    assert meta.boxes["img/b.png"].shape == (2, 4)
    assert meta.boxes["img/b.png"].dtype == np.float64
    np.testing.assert_array_equal(meta.boxes["img/a.png"], [[1, 2, 10, 12]])
    assert meta.num_classes == 5 and meta.max_boxes == 2 and len(meta) == 3
    assert meta.masks is None
    assert meta.image_path("img/a.png") == tmp_path / "img/a.png"
    assert _load(tmp_path).num_classes == 3  # inferred as max label + 1
    assert verify_images(meta) == []


def test_blank_lines_and_commas_in_ids_are_fine(tmp_path):
    folder = write_tree(tmp_path)
    (tmp_path / "img/a.png").rename(tmp_path / "img/a,1.png")
    for name in ("image_ids", "class_labels", "image_sizes", "localization"):
        path = folder / f"{name}.txt"
        path.write_text(path.read_text().replace("img/a.png", "img/a,1.png") + "\n\n")
    assert _load(tmp_path).labels["img/a,1.png"] == 0


def test_missing_metadata_folder(tmp_path):
    write_tree(tmp_path)
    with pytest.raises(DatasetError, match="metadata folder for split 'val'"):
        load_split(tmp_path / "meta", tmp_path, "val")


@pytest.mark.parametrize("name", ["image_ids", "class_labels", "image_sizes", "localization"])
def test_missing_metadata_file(tmp_path, name):
    (write_tree(tmp_path) / f"{name}.txt").unlink()
    with pytest.raises(DatasetError, match=f"missing metadata file .*{name}.txt"):
        _load(tmp_path)


def test_missing_image(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "img/b.png").unlink()
    with pytest.raises(DatasetError, match="1 image file.*listed in .*image_ids.txt are missing.*img/b.png"):
        _load(tmp_path)
    assert _load(tmp_path, check_files=False).image_ids == list(IMAGES)


@pytest.mark.parametrize("content", [b"not a png at all", None])
def test_corrupt_image_is_reported(tmp_path, content):
    write_tree(tmp_path)
    path = tmp_path / "img/b.png"
    data = path.read_bytes()
    # None: a truncated file, as left by an interrupted copy.
    path.write_bytes(content if content is not None else data[: len(data) // 2])
    meta = _load(tmp_path)  # existence is checked, decoding is not
    problems = verify_images(meta)
    assert len(problems) == 1 and "img/b.png" in problems[0]


def test_verify_images_reports_size_mismatch(tmp_path):
    write_tree(tmp_path)
    cv2.imwrite(str(tmp_path / "img/c.png"), np.zeros((8, 8, 3), np.uint8))
    (problem,) = verify_images(_load(tmp_path))
    assert "img/c.png" in problem and "8x8" in problem and "20x16" in problem


def test_duplicate_id(tmp_path):
    folder = write_tree(tmp_path)
    _write(folder / "image_ids.txt", [*IMAGES, "img/a.png"])
    with pytest.raises(DatasetError, match=r"image_ids.txt:4 \(id 'img/a.png'\): duplicate id \(first on line 1\)"):
        _load(tmp_path)


def test_empty_split(tmp_path):
    folder = write_tree(tmp_path)
    _write(folder / "image_ids.txt", ["", "  "])
    with pytest.raises(DatasetError, match="image_ids.txt: empty split"):
        _load(tmp_path)


@pytest.mark.parametrize("name", ["class_labels", "image_sizes", "localization"])
def test_id_missing_from_a_file(tmp_path, name):
    folder = write_tree(tmp_path)
    path = folder / f"{name}.txt"
    _write(path, [line for line in path.read_text().splitlines() if "img/c.png" not in line])
    with pytest.raises(DatasetError, match=f"{name}.txt: 1 image id.*no entry.*img/c.png"):
        _load(tmp_path)


def test_id_not_in_image_ids(tmp_path):
    folder = write_tree(tmp_path)
    with open(folder / "class_labels.txt", "a") as f:
        f.write("img/zzz.png,1\n")
    with pytest.raises(DatasetError, match=r"class_labels.txt:4 \(id 'img/zzz.png'\): id is not listed"):
        _load(tmp_path)


@pytest.mark.parametrize("box", ["-1,2,10,12", "1,2,21,12", "1,2,10,17"])
def test_box_outside_image(tmp_path, box):
    _replace_line(write_tree(tmp_path) / "localization.txt", 2, f"img/b.png,{box}")
    with pytest.raises(DatasetError, match=r"localization.txt:2 \(id 'img/b.png'\).*outside the 20x16 image"):
        _load(tmp_path)


def test_box_touching_far_edge_is_accepted(tmp_path):
    # x1 == w is how several benchmark sets store boxes (x0 + width).
    write_tree(tmp_path)
    meta = _load(tmp_path)
    np.testing.assert_array_equal(meta.boxes["img/b.png"][1], [5, 5, 20, 16])


def test_inverted_box(tmp_path):
    _replace_line(write_tree(tmp_path) / "localization.txt", 1, "img/a.png,10,2,1,12")
    with pytest.raises(DatasetError, match=r"localization.txt:1 \(id 'img/a.png'\): inverted box"):
        _load(tmp_path)


def test_label_out_of_range(tmp_path):
    write_tree(tmp_path)
    with pytest.raises(DatasetError, match=r"class_labels.txt:3 \(id 'img/c.png'\): label 2 is out of range"):
        _load(tmp_path, num_classes=2)


def test_negative_label(tmp_path):
    _replace_line(write_tree(tmp_path) / "class_labels.txt", 1, "img/a.png,-1")
    with pytest.raises(DatasetError, match="label -1 is out of range"):
        _load(tmp_path)


@pytest.mark.parametrize("name, line, message", [
    ("image_sizes", "img/a.png,20", "image_sizes.txt:1: expected 3 comma-separated fields"),
    ("image_sizes", "img/a.png,20,x", r"image_sizes.txt:1 \(id 'img/a.png'\): 'x' is not a valid int"),
    ("image_sizes", "img/a.png,0,16", "image size must be positive"),
    ("class_labels", "img/a.png", "class_labels.txt:1: expected 2 comma-separated fields"),
    ("class_labels", "img/a.png,1.5", "'1.5' is not a valid int"),
    ("localization", "img/a.png,1,2,3", "localization.txt:1: expected 5 comma-separated fields"),
    ("localization", "img/a.png,1,2,3,four", r"localization.txt:1 \(id 'img/a.png'\): 'four' is not a valid float"),
    ("localization", "img/a.png,1,2,nan,4", "non-finite box"),
])
def test_malformed_line(tmp_path, name, line, message):
    _replace_line(write_tree(tmp_path) / f"{name}.txt", 1, line)
    with pytest.raises(DatasetError, match=message):
        _load(tmp_path)


def _write_masks(root: Path, folder: Path, lines) -> None:
    (root / "mask").mkdir()
    fg1 = np.zeros((16, 20), np.uint8)
    fg1[0:4, 0:4] = 255
    fg2 = np.zeros((16, 20), np.uint8)
    fg2[8:16, 10:20] = 200
    ignore = np.zeros((16, 20), np.uint8)
    ignore[0:8, 0:10] = 255  # overlaps fg1: foreground must win
    for name, mask in (("fg1", fg1), ("fg2", fg2), ("ignore", ignore)):
        cv2.imwrite(str(root / f"mask/{name}.png"), mask)
    _write(folder / "masks.txt", lines)


def test_masks_combine_instances_and_ignore(tmp_path):
    folder = write_tree(tmp_path)
    _write_masks(tmp_path, folder, [
        "img/a.png,mask/fg1.png,mask/ignore.png", "img/a.png,mask/fg2.png,mask/ignore.png",
        "img/b.png,mask/fg2.png,", "img/c.png,mask/fg1.png,"])
    meta = _load(tmp_path)
    assert meta.masks["img/a.png"] == (("mask/fg1.png", "mask/fg2.png"), "mask/ignore.png")
    assert meta.masks["img/b.png"] == (("mask/fg2.png",), None)

    mask = load_mask(meta, "img/a.png", (16, 20))
    assert mask.dtype == np.uint8 and mask.shape == (16, 20)
    assert (mask[0:4, 0:4] == 1).all() and (mask[8:, 10:] == 1).all()
    assert (mask[4:8, 0:10] == 255).all() and (mask[0:4, 4:10] == 255).all()
    assert (mask[8:, :10] == 0).all()
    assert set(np.unique(load_mask(meta, "img/b.png", (16, 20)))) == {0, 1}

    # Nearest-neighbour resizing to the evaluation size keeps the labels.
    big = load_mask(meta, "img/a.png", (32, 40))
    assert set(np.unique(big)) == {0, 1, 255}
    np.testing.assert_array_equal(big[::2, ::2], mask)


def test_masks_errors(tmp_path):
    folder = write_tree(tmp_path)
    _write_masks(tmp_path, folder, ["img/a.png,mask/fg1.png", "img/b.png,mask/fg2.png,"])
    with pytest.raises(DatasetError, match="masks.txt:1: expected 'id,mask_path,ignore_path'"):
        _load(tmp_path)
    _write(folder / "masks.txt", ["img/a.png,mask/fg1.png,", "img/b.png,mask/fg2.png,"])
    with pytest.raises(DatasetError, match="masks.txt: 1 image id.*img/c.png"):
        _load(tmp_path)
    _write(folder / "masks.txt", ["img/a.png,mask/fg1.png,", "img/b.png,mask/fg2.png,",
                                  "img/c.png,mask/gone.png,"])
    with pytest.raises(DatasetError, match="mask file.*missing.*gone.png"):
        _load(tmp_path)
    assert _load(tmp_path, check_files=False).masks is not None
    with pytest.raises(DatasetError, match="has no masks.txt"):
        (folder / "masks.txt").unlink()
        load_mask(_load(tmp_path), "img/a.png", (16, 20))
