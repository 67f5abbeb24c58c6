"""The generated pretraining set (kind 'whole_objects') and the part-painted-out diagnostic render."""

import colorsys
import dataclasses

import numpy as np
import pytest

from wsolax.data.synth_objects import (
    CLASSES_PER_COLOUR, OUTLINES, TEXTURES, class_factors, render_whole_object)
from wsolax.data.synth_render import render_example, split_labels
from wsolax.data.synthetic import load_synthetic_split, write_synthetic_dataset
from wsolax.data.synth_spec import SyntheticSpec

OBJECTS = SyntheticSpec(kind="whole_objects", image_size=64, num_classes=64, num_train=128,
                        num_val=0, num_test=0, scale_range=(0.4, 0.9), seed=5)


def test_classes_are_combinations_no_factor_names_a_class():
    # By hand: 38 = 2 + 4 * (1 + 4 * 2) -> star, checks, colour family 2.
    assert class_factors(38) == (2, 1, 2)
    assert (OUTLINES[2], TEXTURES[1]) == ("star", "checks")
    factors = [class_factors(c) for c in range(64)]
    assert len(set(factors)) == 64  # every class its own combination
    for axis in range(3):
        counts = np.bincount([f[axis] for f in factors])
        assert counts.min() == 16  # each outline, texture and colour is shared by 16 classes
    assert CLASSES_PER_COLOUR == 16


def test_whole_objects_are_deterministic_and_have_no_part():
    labels = split_labels(OBJECTS, "train")
    for i in range(20):
        a = render_whole_object(OBJECTS, "train", i, int(labels[i]))
        b = render_whole_object(OBJECTS, "train", i, int(labels[i]))
        np.testing.assert_array_equal(a.image, b.image)
        assert a.mask.any() and not a.part_mask.any() and a.part_class == -1
        ys, xs = np.nonzero(a.mask)
        assert a.box == (xs.min(), ys.min(), xs.max(), ys.max())
        assert not (a.clutter_mask & a.mask).any()
        side = max(a.box[2] - a.box[0], a.box[3] - a.box[1]) + 1
        assert 0.4 * 64 / 1.6 - 2 <= side <= 0.9 * 64 + 2  # scale_range of the side, any rotation


def _mean_hue(image, mask):
    rgb = image[mask].astype(np.float64).mean(axis=0) / 255
    return colorsys.rgb_to_hsv(*rgb)[0]


def test_colour_family_sets_the_hue_and_texture_varies_the_shading():
    spec = dataclasses.replace(OBJECTS, num_distractors=(0, 0), pixel_noise=0.0)
    for cls in (0, 16, 32, 48):  # same outline and texture, colour families 0..3
        ex = render_whole_object(spec, "train", cls, cls)
        family_hue = (cls // 16) / 4
        distance = abs((_mean_hue(ex.image, ex.mask) - family_hue + 0.5) % 1.0 - 0.5)
        assert distance < 0.06  # jitter is +-0.05 of the wheel
        grey = ex.image[ex.mask].astype(np.float64).mean(axis=1)
        assert grey.std() > 5  # a texture, not a flat fill


def test_written_as_a_dataset_with_boxes_and_masks(tmp_path):
    spec = dataclasses.replace(OBJECTS, num_train=16, num_val=4, num_test=0)
    root = write_synthetic_dataset(tmp_path / "objects", spec)
    meta = load_synthetic_split(root, "train", num_classes=64)
    assert len(meta) == 16 and meta.num_classes == 64
    assert (root / "metadata/train/part_localization.txt").read_text().splitlines()[0].endswith(
        ",-1,-1,-1,-1")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        SyntheticSpec(kind="birds")


def test_part_painted_out_changes_only_the_part_pixels_to_body_texture():
    spec = SyntheticSpec(image_size=96, num_classes=10, num_train=12, scale_range=(0.65, 0.9),
                         part_fraction=(0.03, 0.05), body_cue_strength=1.0, seed=2)
    labels = split_labels(spec, "train")
    for i in range(12):
        with_part = render_example(spec, "train", i, int(labels[i]))
        without = render_example(spec, "train", i, int(labels[i]), paint_out_part=True)
        part = with_part.part_mask
        np.testing.assert_array_equal(with_part.image[~part], without.image[~part])
        np.testing.assert_array_equal(with_part.mask, without.mask)
        # The part is a saturated disc; painted out it has the body's pastel texture.
        def saturation(image):
            rgb = image[part].astype(np.float64)
            return ((rgb.max(1) - rgb.min(1)) / np.maximum(rgb.max(1), 1)).mean()
        body = with_part.mask & ~part
        body_rgb = with_part.image[body].astype(np.float64)
        body_sat = ((body_rgb.max(1) - body_rgb.min(1)) / np.maximum(body_rgb.max(1), 1)).mean()
        assert saturation(with_part.image) > 0.8
        assert abs(saturation(without.image) - body_sat) < 0.15
