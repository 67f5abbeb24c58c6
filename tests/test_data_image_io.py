"""Decoding any common image file into RGB uint8."""

import numpy as np
import pytest
from PIL import Image

from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_grey, decode_rgb

RGB = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)


def test_rgb_png_round_trips_in_rgb_order(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "x.png")
    np.testing.assert_array_equal(decode_rgb(tmp_path / "x.png"), RGB)


@pytest.mark.parametrize("mode, suffix", [
    ("L", ".png"), ("RGBA", ".png"), ("P", ".png"), ("P", ".gif"), ("CMYK", ".jpg"),
    ("I;16", ".png"), ("LA", ".png"), ("RGB", ".bmp"), ("RGB", ".jpg"),
])
def test_other_modes_become_rgb_uint8(tmp_path, mode, suffix):
    path = tmp_path / f"x{suffix}"
    Image.fromarray(np.tile(RGB, (4, 4, 1))).convert(mode).save(path)
    image = decode_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (8, 8, 3)
    assert image.flags.c_contiguous


def test_greyscale_is_replicated(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "g.png")
    image = decode_rgb(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], grey)
    np.testing.assert_array_equal(decode_grey(tmp_path / "g.png"), grey)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match="bad.png"):
        decode_rgb(tmp_path / "bad.png")
    with pytest.raises(DatasetError, match="bad.png"):
        decode_grey(tmp_path / "bad.png")
    with pytest.raises(DatasetError, match="cannot read file .*missing.png"):
        decode_rgb(tmp_path / "missing.png")


def test_exif_orientation_is_ignored_like_pillow(tmp_path):
    # image_sizes.txt and the reference code come from Pillow, which does not
    # apply EXIF rotation; applying it would transpose the image vs its boxes.
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise on display
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(path, exif=exif)
    assert decode_rgb(path).shape == (10, 30, 3)
