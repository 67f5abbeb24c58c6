"""The generated WSOL dataset: determinism, knobs, layout, caching."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from wsolax.data import synthetic
from wsolax.data.errors import DatasetError
from wsolax.data.image_io import decode_grey, decode_rgb
from wsolax.data.preview import save_preview_grid
from wsolax.data.synth_render import render_example, render_split, split_labels
from wsolax.data.synthetic import (
    SyntheticSpec, load_part_masks, load_synthetic_split, read_spec, write_synthetic_dataset)

TINY = SyntheticSpec(image_size=32, num_classes=4, num_train=12, num_val=4, num_test=6, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_different_images(tmp_path):
    a = _files(write_synthetic_dataset(tmp_path / "a", TINY))
    b = _files(write_synthetic_dataset(tmp_path / "b", TINY))
    assert a == b
    c = _files(write_synthetic_dataset(tmp_path / "c", dataclasses.replace(TINY, seed=4)))
    assert a.keys() == c.keys()
    assert a["images/train/000000.png"] != c["images/train/000000.png"]


def test_parallel_generation_matches_serial(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "_CHUNK", 4)  # several tasks from a tiny set
    spec = TINY
    serial = _files(write_synthetic_dataset(tmp_path / "s", spec, num_workers=1))
    assert _files(write_synthetic_dataset(tmp_path / "p", spec, num_workers=2)) == serial


def test_layout_parses_back(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", TINY)
    for split in ("train", "val", "test"):
        meta = load_synthetic_split(root, split, num_classes=TINY.num_classes)
        assert len(meta) == TINY.num_images(split)
        assert meta.image_ids[0] == f"images/{split}/000000.png"
        assert meta.num_classes == 4 and meta.max_boxes == 1
        assert set(meta.sizes.values()) == {(32, 32)}
        assert meta.masks[meta.image_ids[0]] == ((f"masks/{split}/000000.png",), None)
        counts = np.bincount(list(meta.labels.values()), minlength=4)
        assert counts.max() - counts.min() <= 1  # balanced
        labels = split_labels(TINY, split)
        assert [meta.labels[i] for i in meta.image_ids] == labels.tolist()
        for image_id in meta.image_ids:
            image = decode_rgb(meta.image_path(image_id))
            assert image.shape == (32, 32, 3)
            # The box is exactly the bounding box of the object mask.
            mask = decode_grey(root / meta.masks[image_id][0][0])
            assert set(np.unique(mask)) == {0, 255}
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(meta.boxes[image_id][0], [xs.min(), ys.min(), xs.max(), ys.max()])


def test_part_masks_and_attributes(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", TINY)
    meta = load_synthetic_split(root, "train")
    parts = load_part_masks(root, "train")
    assert parts.shape == (12, 32, 32) and parts.dtype == bool
    part_boxes = (root / "metadata/train/part_localization.txt").read_text().splitlines()
    attributes = (root / "metadata/train/attributes.txt").read_text().splitlines()
    for k, image_id in enumerate(meta.image_ids):
        ys, xs = np.nonzero(parts[k])
        assert part_boxes[k] == f"{image_id},{xs.min()},{ys.min()},{xs.max()},{ys.max()}"
        object_mask = decode_grey(root / meta.masks[image_id][0][0]) > 0
        assert object_mask[parts[k]].all()  # the part is part of the object
        _, side, body_class, part_class = attributes[k].split(",")
        assert side in ("left", "right")
        assert int(part_class) == meta.labels[image_id]  # part_cue_strength = 1


def test_boxes_are_tight_and_part_fraction_in_range():
    spec = SyntheticSpec(image_size=64, num_train=60, num_classes=3, part_fraction=(0.04, 0.05))
    for ex in render_split(spec, "train"):
        ys, xs = np.nonzero(ex.mask)
        assert ex.box == (xs.min(), ys.min(), xs.max(), ys.max())
        assert ex.mask[ex.part_mask].all()
        # Pixelation moves the area of a ~4-pixel-radius disc by a few pixels.
        assert 0.03 <= ex.part_mask.sum() / ex.mask.sum() <= 0.065
        assert ex.image.dtype == np.uint8 and ex.image.shape == (64, 64, 3)


def test_clutter_stays_off_the_object_box():
    spec = dataclasses.replace(TINY, image_size=48, num_train=30, num_distractors=(6, 8),
                               num_decoy_parts=(2, 3))
    examples = render_split(spec, "train")
    assert sum(e.clutter_mask.any() for e in examples) == 30
    for e in examples:
        x0, y0, x1, y1 = e.box
        assert not e.clutter_mask[y0:y1 + 1, x0:x1 + 1].any()


def test_flip_moves_the_part():
    left = dataclasses.replace(TINY, image_size=64, flip_probability=1.0)
    right = dataclasses.replace(left, flip_probability=0.0)
    for index in range(8):
        a = render_example(left, "train", index, label=1)
        b = render_example(right, "train", index, label=1)
        assert a.part_on_left and not b.part_on_left
        # Same body, the part sits at the other end of it.
        np.testing.assert_array_equal(a.mask, b.mask)
        centre = np.nonzero(a.mask)[1].mean()
        assert np.nonzero(a.part_mask)[1].mean() < centre < np.nonzero(b.part_mask)[1].mean()


def test_cue_strength_knobs():
    spec = dataclasses.replace(TINY, num_train=40, body_cue_strength=1.0, part_cue_strength=1.0)
    examples = render_split(spec, "train")
    assert all(e.body_texture_class == e.label == e.part_class for e in examples)
    off = render_split(dataclasses.replace(spec, num_classes=10, body_cue_strength=0.0,
                                           part_cue_strength=0.0), "train")
    assert sum(e.body_texture_class == e.label for e in off) < 15
    assert sum(e.part_class == e.label for e in off) < 15


def test_non_square_images(tmp_path):
    spec = dataclasses.replace(TINY, image_size=(24, 40), num_train=5, num_val=1, num_test=1)
    root = write_synthetic_dataset(tmp_path / "d", spec)
    meta = load_synthetic_split(root, "train")
    assert set(meta.sizes.values()) == {(40, 24)}  # (w, h)
    assert decode_rgb(meta.image_path(meta.image_ids[0])).shape == (24, 40, 3)
    assert load_part_masks(root, "train").shape == (5, 24, 40)


def test_reuse_regenerate_and_refuse(tmp_path, monkeypatch):
    root = write_synthetic_dataset(tmp_path / "d", TINY)
    stamp = json.loads((root / "spec.json").read_text())
    assert stamp["spec"] == TINY.to_json_dict()

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a set that was already there")

    with monkeypatch.context() as m:
        m.setattr(synthetic, "_generate", fail)
        assert write_synthetic_dataset(root, TINY) == root

    bigger = dataclasses.replace(TINY, num_train=20)
    write_synthetic_dataset(root, bigger)
    assert len(load_synthetic_split(root, "train")) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temp folders left

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="the generator did not write it"):
        write_synthetic_dataset(foreign, TINY)
    (foreign / "spec.json").write_text('{"model": "someone else\'s"}')
    with pytest.raises(DatasetError, match="the generator did not write it"):
        write_synthetic_dataset(foreign, TINY)
    assert (foreign / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    write_synthetic_dataset(empty, TINY)
    assert (empty / "spec.json").exists()


def test_interrupted_generation_is_not_mistaken_for_complete(tmp_path, monkeypatch):
    calls = []

    def render_then_crash(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_render_chunk", render_then_crash)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(tmp_path / "d", TINY)
    assert list(tmp_path.iterdir()) == []  # nothing at root, temp folder cleaned
    monkeypatch.undo()
    root = write_synthetic_dataset(tmp_path / "d", TINY)
    assert len(load_synthetic_split(root, "test")) == 6


def test_spec_validation_and_json_round_trip():
    assert SyntheticSpec.from_json_dict(TINY.to_json_dict()) == TINY
    assert SyntheticSpec(image_size=(20, 30)).hw == (20, 30)
    for bad in (dict(num_classes=1), dict(scale_range=(0.8, 0.2)), dict(part_fraction=(0.0, 0.1)),
                dict(body_cue_strength=1.5), dict(num_train=-1), dict(image_size=8),
                dict(max_rotation_deg=90)):
        with pytest.raises(ValueError, match="SyntheticSpec"):
            SyntheticSpec(**bad)


def test_cli_and_preview(tmp_path, capsys):
    root = tmp_path / "cli"
    args = ["--root", str(root), "--image-size", "32", "--num-classes", "3", "--num-train", "9",
            "--num-val", "3", "--num-test", "3", "--scale-range", "0.5", "0.6",
            "--preview", str(tmp_path / "grid.png")]
    assert synthetic.main(args) == 0
    out = capsys.readouterr().out
    assert "train:      9 images, 3-3 per class" in out and "preview grid" in out
    spec = read_spec(root)
    assert spec.scale_range == (0.5, 0.6) and spec.num_classes == 3
    assert decode_rgb(tmp_path / "grid.png").shape == (256, 1024, 3)  # 2 rows of 8 cells
    synthetic.main(args[:-2])
    assert "reused" in capsys.readouterr().out


def test_preview_grid(tmp_path):
    meta = load_synthetic_split(write_synthetic_dataset(tmp_path / "d", TINY), "val")
    grid = save_preview_grid(meta, tmp_path / "p.png", num=4, columns=2, cell_size=64)
    assert grid.shape == (128, 128, 3)
    np.testing.assert_array_equal(decode_rgb(tmp_path / "p.png"), grid)
