"""Box and image helpers of the input pipeline."""

import numpy as np
import pytest

from wsolax.data.transforms import (
    IMAGENET_MEAN, IMAGENET_STD, Normalizer, as_hw, crop_boxes, hflip_boxes,
    pad_boxes, resize, scale_boxes)

BOXES = np.array([[2, 3, 10, 8], [0, 0, 19, 15]], dtype=np.float32)


def test_as_hw():
    assert as_hw(5) == (5, 5) and as_hw(np.int64(3)) == (3, 3) and as_hw((4, 6)) == (4, 6)


def test_scale_boxes_uses_per_axis_factors():
    np.testing.assert_allclose(scale_boxes(BOXES, (16, 20), (32, 10)),
                               [[1, 6, 5, 16], [0, 0, 9.5, 30]])


def test_hflip_boxes_mirrors_pixel_indices():
    flipped = hflip_boxes(BOXES, 20)
    np.testing.assert_array_equal(flipped, [[9, 3, 17, 8], [0, 0, 19, 15]])
    np.testing.assert_array_equal(hflip_boxes(flipped, 20), BOXES)
    # The box of a flipped image is the flipped box of the image.
    image = np.zeros((16, 20), bool)
    image[3:9, 2:11] = True
    ys, xs = np.nonzero(image[:, ::-1])
    np.testing.assert_array_equal(flipped[0], [xs.min(), ys.min(), xs.max(), ys.max()])


def test_crop_boxes_shifts_clips_and_drops_invisible():
    boxes = np.array([[2, 3, 10, 8], [12, 10, 30, 30], [0, 0, 4, 4]], dtype=np.float32)
    cropped = crop_boxes(boxes, top=5, left=5, crop_hw=(10, 12))
    np.testing.assert_array_equal(cropped, [[0, 0, 5, 3], [7, 5, 11, 9]])
    assert crop_boxes(boxes[2:], 5, 5, (10, 12)).shape == (0, 4)


def test_pad_boxes():
    padded, count = pad_boxes(BOXES, 4)
    assert padded.dtype == np.float32 and padded.shape == (4, 4) and count == 2
    assert not padded[2:].any()
    assert pad_boxes(np.zeros((0, 4), np.float32), 1)[1] == 0
    with pytest.raises(ValueError, match="max_boxes=1"):
        pad_boxes(BOXES, 1)


def test_normalizer_matches_the_formula():
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    out = Normalizer(IMAGENET_MEAN, IMAGENET_STD)(images)
    expected = (images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        Normalizer((0.5, 0.5), (0.2, 0.2, 0.2))


def test_resize_keeps_dtype_and_skips_same_size():
    image = np.zeros((8, 6, 3), np.uint8)
    assert resize(image, (8, 6)) is image
    out = resize(image, (4, 12))
    assert out.shape == (4, 12, 3) and out.dtype == np.uint8
