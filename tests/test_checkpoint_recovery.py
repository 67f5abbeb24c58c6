"""Runs that survive: a damaged latest checkpoint, a config that describes another model, metrics
rows of steps whose checkpoint never finalised."""

import json
import shutil

import jax
import numpy as np
import pytest

from test_end_to_end import CONFIG, tiny_overrides

from wsolax.cli import eval_main
from wsolax.config import load_config
from wsolax.localization.run import evaluate
from wsolax.checkpoint import CheckpointError
from wsolax.training.loop import train

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

KEEP_ALL = {"train.keep_checkpoints": 3}  # checkpoints at steps 2, 4 and 6


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = load_config(CONFIG, tiny_overrides(tmp, **KEEP_ALL))
    result = train(cfg, cfg.workdir)
    return tmp, result


def _copy_run(reference, tmp_path):
    tmp, _ = reference
    shutil.copytree(tmp / "run", tmp_path / "run")
    return load_config(CONFIG, tiny_overrides(tmp_path, **KEEP_ALL,
                                              **{"data.root": str(tmp / "synthetic")}))


def _largest_array_file(step_dir):
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in str(p)]
    return max(files, key=lambda p: p.stat().st_size)


def test_resume_falls_back_past_a_truncated_array_file_and_keeps_it(reference, tmp_path, capsys):
    cfg = _copy_run(reference, tmp_path)
    checkpoints = tmp_path / "run" / "checkpoints"
    damaged = _largest_array_file(checkpoints / "6")
    damaged.write_bytes(damaged.read_bytes()[:100])
    result = train(cfg, cfg.workdir, resume=True)
    err = capsys.readouterr().err
    assert "checkpoint step 6 does not restore" in err and damaged.name in err
    assert result.steps_done == 2  # from step 4 to 6
    # Continued from the complete checkpoint: the same parameters as the uninterrupted run.
    for a, b in zip(jax.tree.leaves(reference[1].state.params), jax.tree.leaves(result.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The damaged checkpoint is kept aside, not deleted; step 6 was written again.
    assert (checkpoints / "6.damaged" / damaged.relative_to(checkpoints / "6")).is_file()
    assert (checkpoints / "6" / "state").is_dir()


def test_eval_falls_back_and_names_a_truncated_stamp(reference, tmp_path, capsys):
    cfg = _copy_run(reference, tmp_path)
    stamp = tmp_path / "run" / "checkpoints" / "6" / "stamp" / "metadata"
    stamp.write_text(stamp.read_text()[:87])
    summary = evaluate(cfg, cfg.workdir, splits=["val"])
    err = capsys.readouterr().err
    assert "checkpoint step 6 does not restore" in err and str(stamp) in err
    assert "not valid JSON" in err
    assert 0 <= summary["splits"]["val"]["top1_cls"] <= 100
    assert stamp.is_file() and not (stamp.parents[2] / "6.damaged").exists()  # eval renames nothing


def test_every_checkpoint_damaged_is_one_error_naming_each(reference, tmp_path, capsys):
    cfg = _copy_run(reference, tmp_path)
    for step in (2, 4, 6):
        (tmp_path / "run" / "checkpoints" / str(step) / "state" / "_METADATA").write_text("{")
    with pytest.raises(CheckpointError, match="restores") as info:
        evaluate(cfg, cfg.workdir, splits=["val"])
    for step in (2, 4, 6):
        assert f"step {step}: " in str(info.value) and f"/{step}/state/_METADATA" in str(info.value)
    argv = ["--config", CONFIG, *tiny_overrides(tmp_path, **{"data.root": str(reference[0] / "synthetic")})]
    assert eval_main(argv) == 2
    assert "_METADATA is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("override, key, old, new", [
    ({"model.inserts": (("stage3", "adl"),)}, "model.inserts", "[]", '[["stage3", "adl"]]'),
    ({"model.dtype": "bfloat16"}, "model.dtype", '"float32"', '"bfloat16"'),
    ({"model.methods.where_to_look": {}}, "model.methods", "[]", '["where_to_look"]'),
    ({"data.crop_size": 24}, "data.crop_size", "32", "24"),
])
def test_resume_refuses_a_config_of_another_model_naming_the_key(reference, tmp_path, override,
                                                                  key, old, new):
    tmp, _ = reference
    cfg = load_config(CONFIG, tiny_overrides(tmp, **KEEP_ALL, **override))
    before = (tmp / "run" / "config.json").read_text()
    with pytest.raises(CheckpointError) as info:
        train(cfg, cfg.workdir, resume=True)
    assert f"{key}: checkpoint {old} vs config {new}" in str(info.value)
    assert (tmp / "run" / "config.json").read_text() == before  # not overwritten


def test_a_method_hyperparameter_counts_but_an_unused_section_and_init_from_do_not(tmp_path):
    adl_config, short = "configs/synthetic_adl.py", {"train.epochs": 1}
    cfg = load_config(adl_config, tiny_overrides(tmp_path, **short))
    train(cfg, cfg.workdir)
    other = load_config(adl_config, tiny_overrides(tmp_path, **short, **{"model.methods.adl.gamma": 0.5}))
    with pytest.raises(CheckpointError, match=r"model\.methods\.adl\.gamma: checkpoint 0\.9 vs config 0\.5"):
        train(other, other.workdir, resume=True)
    # Settings of a layer method the config does not insert, and where the weights came from: not
    # the model.
    same = load_config(adl_config, tiny_overrides(tmp_path, **short, **{
        "model.methods.dgdm": {"alpha": 0.1}, "model.init_from": "elsewhere.safetensors"}))
    assert train(same, same.workdir, resume=True).steps_done == 0


def test_resume_drops_metrics_rows_of_steps_past_the_restored_checkpoint(reference, tmp_path):
    cfg = _copy_run(reference, tmp_path)
    # Step 6's checkpoint never finalised (a kill while it was written): resume restarts at 4.
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "6")
    train(cfg, cfg.workdir, resume=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
