"""A broken val or test split stops `train.py` before the first step, with a message naming it.

Each case: which split and file is broken, the exit code, the first line of the message. The
training split is intact, so without the start-up check each of these would surface only when
evaluation starts, after training.
"""

from pathlib import Path

import pytest

from test_data_validate import CONFIG, _overrides, _replace_line, _write, write_dataset

from wsolax.cli import train_main

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


# name: (breaks the dataset under root, the message's first line contains, [the message contains])
CASES = {
    "missing image": (lambda r: _delete(r / "img/test/s1.jpg"), "are missing under"),
    "truncated image": (lambda r: _truncate(r / "img/test/s1.jpg"),
                        "1 bad image(s) in split 'test'", "img/test/s1.jpg"),
    "not an image": (lambda r: (r / "img/val/v1.jpg").write_text("hello"),
                     "1 bad image(s) in split 'val'", "img/val/v1.jpg"),
    "box outside image": (lambda r: _replace_line(r / "meta/test/localization.txt", 2,
                                                  "img/test/s1.jpg,1,1,30,11"), "lies outside"),
    "inverted box": (lambda r: _replace_line(r / "meta/val/localization.txt", 2,
                                             "img/val/v1.jpg,6,1,1,6"), "inverted box"),
    "test id without a box": (lambda r: _write(r / "meta/test/localization.txt",
                                               ["img/test/s0.jpg,0,0,10,10",
                                                "img/test/s2.jpg,2,2,12,12"]), "img/test/s1.jpg"),
    "missing metadata file": (lambda r: _delete(r / "meta/val/image_sizes.txt"),
                              "missing metadata file"),
    "malformed localization line": (lambda r: _replace_line(r / "meta/test/localization.txt", 1,
                                                            "img/test/s0.jpg,1,2"),
                                    "expected 5 comma-separated fields"),
    "wrong image size": (lambda r: _replace_line(r / "meta/test/image_sizes.txt", 2,
                                                 "img/test/s1.jpg,20,18"),
                         "1 bad image(s) in split 'test'", "decoded size 20x16"),
}


def _train_argv(root: Path, workdir: Path) -> list[str]:
    return ["--config", CONFIG, *_overrides(root), f"--config.workdir={workdir}",
            "--config.data.crop_size=16", "--config.data.resize_size=16",
            "--config.train.batch_size=3", "--config.model.width=4",
            "--config.train.progress_bar=False", "--config.eval.splits=('test',)"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_evaluation_split_stops_training_before_the_first_step(case, tmp_path, capsys):
    root = write_dataset(tmp_path / "data")
    breaks, first, *detail = CASES[case]
    breaks(root)
    workdir = tmp_path / "run"
    assert train_main(_train_argv(root, workdir)) == 2
    err = capsys.readouterr().err
    first_line = err.splitlines()[0]
    assert first_line.startswith("error: ") and first in first_line, first_line
    assert all(d in err for d in detail), err
    assert not (workdir / "checkpoints").exists() and not (workdir / "metrics.jsonl").exists()


def test_decoding_the_evaluation_splits_can_be_turned_off(tmp_path, capsys):
    # 'none': metadata still checked at start-up, images only when evaluation reads them.
    root = write_dataset(tmp_path / "data")
    _truncate(root / "img/test/s1.jpg")
    argv = _train_argv(root, tmp_path / "run") + ["--config.data.verify_eval_images=none",
                                                  "--config.train.max_steps=1"]
    assert train_main(argv) == 2
    assert (tmp_path / "run" / "checkpoints").exists()  # training ran; evaluation failed
    assert "img/test/s1.jpg" in capsys.readouterr().err
