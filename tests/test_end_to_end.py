"""Train -> checkpoint -> evaluate on a tiny generated dataset, resume, and the CLI's error paths."""

import json
import shutil

import jax
import numpy as np
import pytest

from wsolax.cli import eval_main, train_main
from wsolax.config import load_config
from wsolax.localization.run import evaluate
from wsolax.checkpoint import CheckpointError
from wsolax.training.loop import train

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

CONFIG = "configs/synthetic_cam.py"


def tiny_overrides(tmp, **extra):
    values = {
        "data.root": str(tmp / "synthetic"),
        "data.synthetic.image_size": 32, "data.synthetic.num_train": 48,
        "data.synthetic.num_val": 16, "data.synthetic.num_test": 16,
        "data.resize_size": 36, "data.crop_size": 32, "data.num_threads": 1,
        "model.width": 4, "train.batch_size": 16, "train.epochs": 2,
        "train.checkpoint_every_steps": 2, "train.log_every_steps": 1, "train.progress_bar": False,
        "eval.batch_size": 8, "eval.num_overlays": 3, "eval.splits": ("val", "test"),
        "workdir": str(tmp / "run"),
    }
    values.update(extra)
    return [f"--config.{k}={v!r}" if isinstance(v, (str, tuple)) else f"--config.{k}={v}"
            for k, v in values.items()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = load_config(CONFIG, tiny_overrides(tmp, **{"train.val_every_epochs": 1.0}))
    result = train(cfg, cfg.workdir)
    return tmp, cfg, result


def test_train_writes_checkpoints_and_metrics(trained):
    tmp, cfg, result = trained
    assert result.steps_done == result.total_steps == 6  # 48 images / 16 per batch * 2 epochs
    steps = sorted(int(p.name) for p in (tmp / "run" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 6 and len(steps) <= cfg.train.keep_checkpoints
    lines = [json.loads(l) for l in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [l for l in lines if l["split"] == "train"]
    assert [l["step"] for l in train_lines] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(l["loss"]) and 0 <= l["accuracy"] <= 1 for l in train_lines)
    # Validation every epoch (3 steps) with the evaluator, from inside the training loop.
    val_lines = [l for l in lines if l["split"] == "val"]
    assert [l["step"] for l in val_lines] == [3, 6]
    assert all(0 <= l["max_box_acc"] <= 100 and 0 <= l["top1_cls"] <= 100 for l in val_lines)
    assert any((tmp / "run" / "tensorboard").iterdir())
    assert json.loads((tmp / "run" / "config.json").read_text())["model"]["width"] == 4


def test_evaluate_writes_sane_metrics_overlays_and_report(trained):
    tmp, cfg, _ = trained
    summary = evaluate(cfg, cfg.workdir)
    out = tmp / "run" / "eval"
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["threshold_split"] == "val" and 0 <= stored["tau"] < 1
    for split in ("val", "test"):
        m = stored["splits"][split]
        for key in ("top1_cls", "top5_cls", "max_box_acc", "max_box_acc_v2", "pxap",
                    "gt_known_loc@val_tau", "top1_loc@val_tau", "gt_known_loc@best_tau"):
            assert 0.0 <= m[key] <= 100.0, (split, key, m[key])
        # Internal consistency the protocol implies.
        assert m["top1_loc@val_tau"] <= m["gt_known_loc@val_tau"] <= m["max_box_acc"]
        assert m["top1_loc@best_tau"] <= m["top1_cls"] and m["top1_cls"] <= m["top5_cls"]
        assert m["num_images"] == 16
        pngs = sorted((out / f"overlays_{split}").glob("*.png"))
        assert len(pngs) == 3 and all(p.stat().st_size > 100 for p in pngs)
        assert (out / f"curves_{split}.png").stat().st_size > 1000
    # The threshold is chosen on val, so on val the @val_tau value is the best one.
    assert stored["splits"]["val"]["gt_known_loc@val_tau"] == stored["splits"]["val"]["max_box_acc"]
    assert "tau = " in (out / "report.md").read_text()
    assert summary["splits"]["test"]["max_box_acc"] == stored["splits"]["test"]["max_box_acc"]


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(trained, tmp_path):
    tmp, _, full = trained
    data = {"data.root": str(tmp / "synthetic")}
    interrupted = load_config(CONFIG, tiny_overrides(tmp_path, **data, **{"train.max_steps": 3}))
    first = train(interrupted, interrupted.workdir)
    assert first.steps_done == 3
    rest = load_config(CONFIG, tiny_overrides(tmp_path, **data))
    second = train(rest, rest.workdir, resume=True)
    assert second.steps_done == 3
    for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(second.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cli_train_refuses_to_overwrite_without_resume(trained, capsys):
    tmp, _, _ = trained
    before = sorted(p.name for p in (tmp / "run" / "checkpoints").iterdir())
    assert train_main(["--config", CONFIG, "--no-eval", *tiny_overrides(tmp)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp / "run" / "checkpoints").iterdir()) == before


def test_checkpoint_of_a_different_model_is_refused(trained, tmp_path, capsys):
    tmp, _, _ = trained
    other = load_config(CONFIG, tiny_overrides(tmp, **{"model.width": 8}))
    with pytest.raises(CheckpointError, match="different model"):
        evaluate(other, other.workdir)
    with pytest.raises(CheckpointError, match="different model"):
        train(other, other.workdir, resume=True)
    assert eval_main(["--config", CONFIG, *tiny_overrides(tmp, **{"model.width": 8})]) == 2
    assert "different model" in capsys.readouterr().err


def test_eval_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    code = eval_main(["--config", CONFIG, *tiny_overrides(tmp_path)])
    assert code == 2 and "no checkpoints" in capsys.readouterr().err


def test_missing_dataset_folder_is_a_clear_error(tmp_path, capsys):
    args = ["--config", CONFIG, "--no-eval", "--config.data.source=folder",
            f"--config.data.metadata_root={tmp_path / 'nope' / 'metadata'}",
            f"--config.data.image_root={tmp_path / 'nope'}", *tiny_overrides(tmp_path)]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nope" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def _folder_args(tmp, src):
    return ["--config.data.source=folder", f"--config.data.metadata_root={src / 'metadata'}",
            f"--config.data.image_root={src}"]


def test_a_dataset_with_only_a_test_split_gets_the_threshold_free_metrics(trained, tmp_path,
                                                                         capsys):
    """MaxBoxAcc, MaxBoxAccV2 and PxAP need no tau; Top-1 / GT-known Loc need one chosen on a
    val split, or given as eval.tau."""
    tmp, _, _ = trained
    src, run = tmp_path / "only_test", tmp_path / "run"
    shutil.copytree(tmp / "synthetic", src)
    shutil.rmtree(src / "metadata" / "val")
    shutil.copytree(tmp / "run", run, ignore=shutil.ignore_patterns("eval"))
    args = ["--config", CONFIG, *tiny_overrides(tmp_path, **{"eval.splits": ("test",)}),
            *_folder_args(tmp_path, src), "--workdir", str(run)]
    assert eval_main(args) == 0, capsys.readouterr().err
    assert "no 'val' split to choose the CAM threshold on" in capsys.readouterr().out
    summary = json.loads((run / "eval" / "metrics.json").read_text())
    test = summary["splits"]["test"]
    assert summary["tau"] is None and summary["threshold_split"] is None
    assert 0 <= test["max_box_acc"] <= 100 and 0 <= test["max_box_acc_v2"] <= 100
    assert not [k for k in test if k.endswith("@val_tau")]

    # A tau given on the command line: the tau-dependent metrics at that point of the curves.
    assert eval_main(args + ["--config.eval.tau=0.3"]) == 0, capsys.readouterr().err
    summary = json.loads((run / "eval" / "metrics.json").read_text())
    curves = np.load(run / "eval" / "curves_test.npz")
    test = summary["splits"]["test"]
    index = summary["tau_index"]
    assert summary["tau"] == pytest.approx(0.3) and curves["thresholds"][index] == summary["tau"]
    assert test["gt_known_loc@val_tau"] == curves["gt_known_loc_curve"][index]
    assert test["top1_loc@val_tau"] == curves["top1_loc_curve"][index]
    capsys.readouterr()
    assert eval_main(args + ["--config.eval.tau=0.30005"]) == 2  # between grid points
    assert "not on the threshold grid" in capsys.readouterr().err


@pytest.mark.parametrize("damage, expected", [
    ("missing_image", "missing"),
    ("corrupt_image", "corrupt"),
    ("box_outside", "outside"),
    ("label_out_of_range", "range"),
    ("empty_split", "empty"),
])
def test_bad_dataset_is_a_clear_error_before_training(trained, tmp_path, capsys, damage, expected):
    tmp, _, _ = trained
    src = tmp_path / "copy"
    shutil.copytree(tmp / "synthetic", src)
    meta = src / "metadata" / "train"
    ids = (meta / "image_ids.txt").read_text().splitlines()
    if damage == "missing_image":
        (src / ids[3]).unlink()
    elif damage == "corrupt_image":
        (src / ids[3]).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif damage == "box_outside":
        lines = (meta / "localization.txt").read_text().splitlines()
        lines[0] = f"{ids[0]},1,1,500,20"
        (meta / "localization.txt").write_text("\n".join(lines) + "\n")
    elif damage == "label_out_of_range":
        lines = (meta / "class_labels.txt").read_text().splitlines()
        lines[2] = f"{ids[2]},99"
        (meta / "class_labels.txt").write_text("\n".join(lines) + "\n")
    elif damage == "empty_split":
        for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
            (meta / name).write_text("")
    args = ["--config", CONFIG, "--no-eval", *tiny_overrides(tmp_path), *_folder_args(tmp_path, src)]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and expected in err.lower(), err
    assert not list((tmp_path / "run").glob("checkpoints/*/"))


def test_multihost_with_an_incomplete_process_setup_fails_before_touching_jax_distributed(
        tmp_path, capsys):
    # Outside a cluster manager all three of coordinator, count and id are needed; checked
    # before jax.distributed.initialize() would wait for peers.
    code = train_main(["--config", "configs/synthetic_cam.py:runlocal", "--multihost",
                       "--num-processes", "2", f"--config.workdir={tmp_path}"])
    assert code == 2 and "needs all three of --coordinator" in capsys.readouterr().err


def test_export_backbone_then_finetune_another_method_from_it(trained, tmp_path, capsys):
    """A CAM run's backbone starts a Where-to-Look run; its new heads keep their initialisation."""
    from flax import traverse_util

    from wsolax.cli import export_main
    from wsolax import sharding
    from wsolax.training.loop import build_training, start_from_converted

    tmp, _, result = trained
    out = tmp_path / "backbone.safetensors"
    assert export_main(["--config", CONFIG, *tiny_overrides(tmp), "--only", "backbone",
                        "--out", str(out)]) == 0, capsys.readouterr().err
    cfg = load_config("configs/synthetic_wtl.py:finetune",
                      tiny_overrides(tmp, **{"model.init_from": str(out)}))
    mesh = sharding.data_mesh(jax.devices()[:1])
    _, tx, _, fresh, _, _ = build_training(cfg, 48, mesh)
    started = start_from_converted(cfg, fresh, tx, mesh)
    trained_flat = traverse_util.flatten_dict(jax.device_get(result.state.params), sep="/")
    fresh_flat = traverse_util.flatten_dict(jax.device_get(fresh.params), sep="/")
    started_flat = traverse_util.flatten_dict(jax.device_get(started.params), sep="/")
    backbone = [k for k in started_flat if k.startswith("backbone/")]
    head = [k for k in started_flat if k.startswith("head/")]
    assert backbone and head and len(backbone) + len(head) == len(started_flat)
    for k in backbone:
        np.testing.assert_array_equal(started_flat[k], trained_flat[k])
    for k in head:
        np.testing.assert_array_equal(started_flat[k], fresh_flat[k])
    # The CAM head is not in the file, so nothing of it can leak into the new run.
    assert not any("classifier_x" in k for k in trained_flat)


def test_export_refuses_a_run_without_checkpoints(tmp_path, capsys):
    from wsolax.cli import export_main

    assert export_main(["--config", CONFIG, *tiny_overrides(tmp_path), "--out",
                        str(tmp_path / "w.safetensors")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
