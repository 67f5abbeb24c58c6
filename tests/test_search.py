"""The hyperparameter search (wsolax.search): bad input refused before training, reproducible
draws, trials that diverge kept as failed with their reason, the test split never read, and a
study killed with SIGKILL resumed by the same command without re-running finished trials."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from wsolax.config import ConfigError, load_config
from wsolax.search.__main__ import main as search_main
from wsolax.search.sampler import SeededRandomSampler
from wsolax.search.space import check_space
from wsolax.search.study import SearchSpec, run_search

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config.model.width=4", "--config.train.max_steps=3"]


def _cfg(tmp_path, config="configs/synthetic_adl.py:runlocal"):
    return load_config(config, [*TINY, f"--config.data.root={tmp_path / 'data'}"])


def _spec(space, config="configs/synthetic_adl.py:runlocal", seed=0, metric="max_box_acc_v2"):
    return SearchSpec(config=config, overrides=(), space=space, metric=metric, split="val",
                      seed=seed)


@pytest.mark.parametrize("space,match", [
    ({"optim.lrr": ("log_uniform", 1e-3, 1.0)}, "'optim.lrr' is not a config key"),
    ({"model.methods.adl.drop_rat": ("uniform", 0, 1)}, "not a hyperparameter of adl; known:"),
    ({"model.methods.dgdm.alpha": ("uniform", 0, 1)}, "does not select method 'dgdm'"),
    ({"optim.lr": ("log_uniform", 0.1, 0.01)}, "empty or inverted"),
    ({"optim.lr": ("uniform", 0.1, 0.1)}, "empty or inverted"),
    ({"optim.lr": ("log_uniform", 0.0, 0.1)}, "log_uniform needs low > 0"),
    ({"model.large_feature_map": ("choice", ())}, "at least one value"),
    ({"optim.lr": ("normal", 0.0, 1.0)}, "kind must be one of"),
    ({}, "empty"),
])
def test_a_bad_space_is_refused_by_name(tmp_path, space, match):
    with pytest.raises(ConfigError, match=match):
        check_space(space, _cfg(tmp_path))


def test_bad_input_stops_before_any_training(tmp_path, capsys):
    space = tmp_path / "space.py"
    space.write_text("def get_space():\n    return {'optim.lr': ('log_uniform', 1e-3, 1e-1)}\n")
    args = ["--config", "configs/synthetic_adl.py:runlocal", "--space", str(space),
            "--storage", str(tmp_path / "s.db"), "--out", str(tmp_path / "out"),
            f"--config.data.root={tmp_path / 'data'}"]
    assert search_main([*args, "--trials", "0"]) == 2
    assert "--trials must be at least 1" in capsys.readouterr().err
    assert search_main([*args, "--trials", "1", "--split", "test"]) == 2
    assert "never on test" in capsys.readouterr().err
    # A storage holding a study of another config is refused, naming what differs.
    cfg = _cfg(tmp_path)
    from wsolax.search.study import open_study
    open_study(_spec({"optim.lr": ("log_uniform", 1e-3, 1e-1)},
                     config="configs/synthetic_cam.py:runlocal"), str(tmp_path / "s.db"), "out")
    assert search_main([*args, "--trials", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a study 'out' of another search (differs in: config" in err[0]
    assert not (tmp_path / "data").exists() and cfg is not None  # nothing was generated or trained


def _draws(seed, n, storage=None):
    study = optuna.create_study(sampler=SeededRandomSampler(seed), direction="maximize",
                                storage=storage, study_name="s", load_if_exists=True)
    for _ in range(n):
        t = study.ask()
        t.suggest_float("lr", 1e-4, 1.0, log=True)
        t.suggest_categorical("lfm", [False, True])
        study.tell(t, 0.0)
    return [dict(t.params) for t in study.trials]


def test_draws_depend_on_the_seed_and_the_draw_only(tmp_path):
    a, b = _draws(3, 6), _draws(3, 6)
    assert a == b and _draws(4, 6) != a
    # Resumed from storage in a fresh study object (a new process): the sequence continues.
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = _draws(3, 4, url)
    both = _draws(3, 2, url)
    assert first == a[:4] and both == a
    # Log-uniform: half the draws of [1e-4, 1] below 1e-2 (binomial, 5 sigma over 400 draws).
    lrs = np.array([p["lr"] for p in _draws(0, 400)])
    assert ((1e-4 <= lrs) & (lrs <= 1.0)).all()
    assert abs((lrs < 1e-2).mean() - 0.5) < 5 * math.sqrt(0.25 / 400)


@pytest.mark.slow
def test_a_search_reads_no_test_file_and_keeps_a_diverged_trial_as_failed(tmp_path):
    cfg = _cfg(tmp_path)
    from wsolax import datasets
    test_meta = datasets.load_split(cfg.data, "test")  # generates every split before the search
    def split_files(split, meta):
        files = {str(Path(p).resolve()) for p in (tmp_path / "data").rglob("*")
                 if split in Path(p).relative_to(tmp_path / "data").parts}
        return files | {str((Path(cfg.data.root) / i).resolve())
                        for i in meta.image_ids}

    test_files = split_files("test", test_meta)
    val_files = split_files("val", datasets.load_split(cfg.data, "val"))
    assert test_files and not test_files & val_files
    opened, watching = [], [True]

    def hook(event, args):
        if watching[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(str(Path(os.fsdecode(args[0])).resolve()))

    sys.addaudithook(hook)
    # lr 1e30 diverges within a few steps; 0.05 trains: one of each, drawn by the seed.
    space = {"optim.lr": ("choice", (1e30, 0.05))}
    try:
        study = run_search(cfg, _spec(space, seed=1), 3, str(tmp_path / "s.db"),
                           tmp_path / "out", log=lambda *_: None)
    finally:
        watching[0] = False
    read_test = sorted(set(opened) & test_files)
    assert not read_test, read_test[:5]
    assert set(opened) & val_files  # the hook sees the dataset's reads: val's were read
    trials = study.get_trials()
    assert len(trials) == 3
    lrs = [t.params["optim.lr"] for t in trials]
    assert 1e30 in lrs and 0.05 in lrs
    for t in trials:
        if t.params["optim.lr"] == 1e30:
            assert t.state == optuna.trial.TrialState.FAIL
            assert "training stopped at step" in t.user_attrs["failure"]
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE and t.value >= 0
            assert {"seed", "top1_cls", "seconds"} <= set(t.user_attrs)


def _study_states(storage, name="out"):
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.number, t.state.name, dict(t.params), dict(t.system_attrs)) for t in study.trials]


@pytest.mark.slow
def test_a_killed_search_resumes_with_the_same_command(tmp_path):
    space = tmp_path / "space.py"
    space.write_text("def get_space():\n    return {'optim.lr': ('log_uniform', 1e-2, 1e-1),\n"
                     "            'model.methods.adl.drop_rate': ('uniform', 0.5, 0.9)}\n")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [sys.executable, "-m", "wsolax.search", "--config", "configs/synthetic_adl.py:runlocal",
           "--space", str(space), "--trials", "3", "--storage", storage,
           "--out", str(tmp_path / "out"), *TINY, f"--config.data.root={tmp_path / 'data'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 600
    states = []
    while time.time() < deadline:  # kill it while its second trial runs
        time.sleep(0.5)
        try:
            states = _study_states(storage)
        except Exception:  # the study does not exist yet
            continue
        if any(n >= 1 and s == "RUNNING" for n, s, _, _ in states):
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _study_states(storage)
    complete_before = {n: p for n, s, p, _ in before if s == "COMPLETE"}
    interrupted = [(n, p) for n, s, p, _ in before if s == "RUNNING"]
    assert complete_before and len(interrupted) == 1, before

    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"trial {interrupted[0][0]} was interrupted" in out.stdout
    after = _study_states(storage)
    complete = {n: p for n, s, p, _ in after if s == "COMPLETE"}
    assert len(complete) == 3
    # Finished trials were kept, not re-run; the interrupted one was re-run with its setting.
    assert all(complete[n] == p for n, p in complete_before.items())
    retries = [(n, p) for n, s, p, a in after if a.get("failed_trial") == interrupted[0][0]]
    assert len(retries) == 1 and retries[0][1] == interrupted[0][1]
    assert retries[0][0] in complete
    # The interrupted trial's partial run is gone; the retry's run is there.
    assert not (tmp_path / "out" / f"trial_{interrupted[0][0]:04d}").exists()
    assert (tmp_path / "out" / f"trial_{retries[0][0]:04d}" / "checkpoints").is_dir()
    assert (tmp_path / "out" / "trials.md").exists() and "interrupted" in \
        (tmp_path / "out" / "trials.md").read_text()


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path):
    space = tmp_path / "space.py"
    space.write_text("def get_space():\n    return {'optim.lr': ('log_uniform', 1e-2, 1e-1)}\n")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    from wsolax import datasets
    datasets.load_split(_cfg(tmp_path).data, "train")  # the data exists before both start
    cmd = [sys.executable, "-m", "wsolax.search", "--config", "configs/synthetic_adl.py:runlocal",
           "--space", str(space), "--trials", "4", "--storage", storage,
           "--out", str(tmp_path / "out"), *TINY, f"--config.data.root={tmp_path / 'data'}"]
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]
    logs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [log[-2000:] for log in logs]
    study = optuna.load_study(study_name="out", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4  # the budget, not more, however the two raced
    # Both took trials, each trial a draw of its own (no setting drawn twice).
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert sorted(t.user_attrs["draw"] for t in complete) == [0, 1, 2, 3]
    assert len({t.params["optim.lr"] for t in complete}) == len(complete)


def test_a_worker_that_loses_the_race_to_create_the_storage_opens_it_again(tmp_path, monkeypatch):
    # Two workers started together on a new SQLite file: the loser's schema creation fails with
    # "table already exists" or a duplicate schema version (the CI failure of stop 37).
    import sqlalchemy.exc

    from wsolax.search import study as study_module

    real, calls = study_module.RDBStorage, []

    def loses_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version", {}, Exception())
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "RDBStorage", loses_once)
    spec = SearchSpec("c", (), {"optim.lr": ("log_uniform", 1e-2, 1e-1)}, "max_box_acc_v2",
                      "val", 0)
    study = study_module.open_study(spec, str(tmp_path / "s.db"), "x")
    assert len(calls) == 2 and study.user_attrs["search"] == spec.identity()


def test_a_setting_the_method_refuses_is_a_failed_trial_not_a_crash(tmp_path):
    # SPG's low threshold drawn above its high one (0.7 by default): the method's check refuses
    # the setting before anything trains; the trial is failed with that reason and counts.
    spec = _spec({"model.methods.spg.threshold_1l": ("uniform", 0.8, 0.9)},
                 config="configs/synthetic_spg.py:runlocal")
    study = run_search(_cfg(tmp_path, "configs/synthetic_spg.py:runlocal"), spec, 2,
                       str(tmp_path / "s.db"), tmp_path / "out", log=lambda *_: None)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    assert all(t.user_attrs["failure"].startswith("invalid setting:") and "threshold_1l"
               in t.user_attrs["failure"] for t in trials)
    assert not list((tmp_path / "out").glob("trial_*/checkpoints"))
