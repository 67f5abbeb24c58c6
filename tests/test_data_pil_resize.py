"""Images as the CVPR'20 benchmark makes them (`data.resize = "pil_bilinear"`): its
`data_loaders.py` opens every image with `Image.open(path).convert('RGB')` and resizes it with
torchvision's `Resize((h, w))` on the PIL image, i.e. Pillow's bilinear filter. The expected arrays
here are computed with Pillow in the test, on files the test writes at CUB-like sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from wsolax.config import ConfigError, load_config
from wsolax.data.metadata import load_split
from wsolax.data.pipeline import eval_batches, train_batches

# (file, Pillow mode written, (width, height)): down- and upscaling, odd sizes, every mode the
# benchmark's convert('RGB') meets.
CASES = [
    ("rgb_500x375.jpg", "RGB", (500, 375)),
    ("rgb_375x500.jpg", "RGB", (375, 500)),
    ("odd_333x251.jpg", "RGB", (333, 251)),
    ("small_61x45.jpg", "RGB", (61, 45)),
    ("grey_320x241.jpg", "L", (320, 241)),
    ("cmyk_300x200.jpg", "CMYK", (300, 200)),
    ("palette_257x193.png", "P", (257, 193)),
    ("deep_210x190.png", "I;16", (210, 190)),
    ("alpha_230x170.png", "RGBA", (230, 170)),
    ("rgb_448x336.png", "RGB", (448, 336)),
]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _picture(rng, w, h):
    """Fine stripes and noise over a gradient: detail a resize without antialiasing aliases."""
    y, x = np.mgrid[0:h, 0:w]
    stripes = 127.5 + 127.5 * np.sin(x * 1.7 + y * 0.9)
    base = np.stack([stripes, x * 255.0 / w, y * 255.0 / h], -1)
    return np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def _write(path, mode, size, rng):
    rgb = Image.fromarray(_picture(rng, *size))
    if mode == "I;16":
        deep = (np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16)
        image = Image.fromarray(deep)  # uint16: mode I;16
        assert image.mode == "I;16"
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode == "RGBA":
        image = rgb.copy()
        image.putalpha(Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8)))
    else:
        image = rgb.convert(mode)
    image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub_like")
    images, meta = root / "images", root / "metadata" / "test"
    images.mkdir()
    meta.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, mode, size in CASES:
        _write(images / name, mode, size, rng)
    ids = [name for name, _, _ in CASES]
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},{k % 2}\n" for k, i in enumerate(ids)))
    (meta / "image_sizes.txt").write_text("".join(f"{i},{w},{h}\n" for i, _, (w, h) in CASES))
    (meta / "localization.txt").write_text(
        "".join(f"{i},{w // 4},{h // 4},{w // 2},{h // 2}\n" for i, _, (w, h) in CASES))
    return load_split(root / "metadata", images, "test", num_classes=2), images


def _pil(path, hw):
    """The benchmark's pipeline, written out: open, convert('RGB'), bilinear resize to (h, w)."""
    return np.asarray(Image.open(path).convert("RGB").resize((hw[1], hw[0]), Image.BILINEAR))


def test_the_pil_reading_is_a_real_difference():
    # The test below can fail: OpenCV's bilinear (no antialiasing) gives other pixels here.
    import cv2

    picture = _picture(np.random.default_rng(1), 500, 375)
    pil = np.asarray(Image.fromarray(picture).resize((224, 224), Image.BILINEAR))
    ocv = cv2.resize(picture, (224, 224), interpolation=cv2.INTER_LINEAR)
    assert np.mean(pil != ocv) > 0.3


@pytest.mark.parametrize("hw", [(224, 224), (200, 264)])
def test_evaluation_images_are_pillows_byte_for_byte(split, hw):
    meta, images = split
    raw = eval_batches(meta, batch_size=len(CASES), crop_size=hw, mean=None, std=None,
                       resize="pil_bilinear")[0]
    for k, (name, _, _) in enumerate(CASES):
        np.testing.assert_array_equal(raw["image"][k], _pil(images / name, hw), err_msg=name)


def test_the_normalised_tensor_is_x_over_255_minus_mean_over_std(split):
    meta, images = split
    batch = eval_batches(meta, batch_size=len(CASES), crop_size=224, mean=MEAN, std=STD,
                         resize="pil_bilinear")[0]
    for k, (name, _, _) in enumerate(CASES):
        x = _pil(images / name, (224, 224)).astype(np.float64)
        expected = (x / 255.0 - np.array(MEAN)) / np.array(STD)
        np.testing.assert_allclose(batch["image"][k], expected, rtol=0, atol=2e-6, err_msg=name)


def test_training_crops_come_from_pillows_resize(split):
    meta, images = split
    raw = train_batches(meta, batch_size=len(CASES), resize_size=256, crop_size=224, seed=3,
                        mean=None, std=None, drop_remainder=False, resize="pil_bilinear")[0]
    for row, index in enumerate(raw["index"]):
        name = CASES[int(index)][0]
        resized = _pil(images / name, (256, 256))
        found = any(np.array_equal(raw["image"][row], crop[:, ::-1] if flip else crop)
                    for top, left, flip in itertools.product(range(33), range(33), (False, True))
                    for crop in [resized[top:top + 224, left:left + 224]])
        assert found, f"{name}: the training crop is no crop of Pillow's 256 x 256 resize"


def test_configs_choose_their_pipeline_and_a_typo_is_refused():
    assert load_config("configs/wsolevaluation.py:cub,cam,resnet50").data.resize == "pil_bilinear"
    assert load_config("configs/cub_adl_vgg16.py").data.resize == "pil_bilinear"
    assert load_config("configs/synthetic_adl.py:finegrained").data.resize == "cv2_linear"
    assert load_config("configs/pretrain_objects.py").data.resize == "cv2_linear"
    with pytest.raises(ConfigError, match="data.resize"):
        load_config("configs/wsolevaluation.py:cub,cam,resnet50", ["--config.data.resize=pil"])


def test_an_image_pillow_cannot_open_is_named(tmp_path):
    from wsolax.data.errors import DatasetError
    from wsolax.data.image_io import decode_rgb

    bad = tmp_path / "Black_Footed_Albatross_0001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(DatasetError, match="Black_Footed_Albatross_0001.jpg"):
        decode_rgb(bad, decoder="pil")
