"""The equal-budget hyperparameter search of Choe et al. (CVPR'20) as an Optuna study whose trials
are ordinary wsolax runs: train with a drawn setting, score on the selection split (val: the
embedded set's held-out fully-supervised split, the user's train-fullsup on real data), keep the
best. The test split is never evaluated or read.

Storage: an Optuna RDB URL (`postgresql://...`, `mysql://...`, `sqlite:///...`); a plain path is
an SQLite file. Several workers share one study by running the same command against the same
storage (processes on one machine: the SQLite file; on several machines: a database server).

Budget: the n-th new trial draws setting n (wsolax/search/sampler.py); draws 0 .. trials-1 are
the budget, so workers that start trials at the same moment never overshoot it (a trial with a
later draw is pruned before it trains).

Resume: every trial records its worker (host:pid) and sends heartbeats. A trial whose process died
-- `kill -9`, a lost machine -- is failed and retried with the same setting, from its start (its
workdir is cleared): at once when its worker ran on this host and is gone, otherwise once its
heartbeat is `grace_period` seconds old. Finished trials are never re-run; a run of the same
command finishes the missing ones.

A trial whose training stops at a non-finite loss (`train.stop_on_nonfinite`) is a finished,
failed trial: its reason is kept (user attribute `failure`) and it counts towards the budget, as a
diverged run of the reference's search would.
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import ml_collections
import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from wsolax.config import ConfigError, validate
from wsolax.localization.run import evaluate
from wsolax.registry import selected_methods
from wsolax.search.sampler import DRAW, SeededRandomSampler
from wsolax.search.space import canonical, check_space, set_value
from wsolax.training.loop import train
from wsolax.training.nonfinite import NonFiniteLoss

METRICS = ("max_box_acc_v2", "pxap", "max_box_acc", "top1_loc@val_tau", "gt_known_loc@val_tau")
RECORDED = ("top1_cls", "max_box_acc", "max_box_acc_v2", "pxap")  # user attributes of a trial
FAILURE = "failure"  # user attribute: why a trial failed (it counts as done)
# An interrupted trial is enqueued again with its setting, up to three times, whichever way its
# interruption was found (a dead local process, a stale heartbeat).
with warnings.catch_warnings():  # experimental in Optuna, and its documented way to retry
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    RETRY = RetryHeartbeatStaleTrialCallback(max_retry=3)
WORKER = "worker"
OPEN_ATTEMPTS = 8


@dataclass(frozen=True)
class SearchSpec:
    """What identifies a study: a storage holding a study of another spec is refused."""

    config: str  # the config argument, e.g. configs/synthetic_adl.py:finegrained
    overrides: tuple[str, ...]
    space: dict
    metric: str
    split: str
    seed: int

    def identity(self) -> dict:
        return {"config": self.config, "overrides": list(self.overrides),
                "space": canonical(self.space), "metric": self.metric, "split": self.split,
                "seed": self.seed}


class TrialFailed(Exception):
    """A trial that ended with a reason (diverged): failed, recorded, counted as done."""


def check_inputs(spec: SearchSpec, cfg: ml_collections.ConfigDict, trials: int) -> None:
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    if spec.metric not in METRICS:
        raise ConfigError(f"--metric must be one of {METRICS}, got {spec.metric!r}")
    if spec.split == "test":
        raise ConfigError("the search selects on a held-out split, never on test")
    check_space(spec.space, cfg)


def storage_url(storage: str) -> str:
    return storage if "://" in storage else f"sqlite:///{Path(storage).absolute()}"


def open_study(spec: SearchSpec, storage: str, name: str,
               heartbeat_interval: int = 30, grace_period: int = 120) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and the retry callback are marked experimental in Optuna; they are the documented
    # way to find trials whose process died.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Workers started together race to create a new storage's tables (one of them gets "table
    # already exists" or a duplicate schema version); the loser opens the storage again.
    for attempt in range(OPEN_ATTEMPTS):
        try:
            rdb = RDBStorage(storage_url(storage), heartbeat_interval=heartbeat_interval,
                             grace_period=grace_period, heartbeat_stale_trial_callback=RETRY)
            study = optuna.create_study(storage=rdb, study_name=name, direction="maximize",
                                        sampler=SeededRandomSampler(spec.seed),
                                        load_if_exists=True)
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + 0.03 * (os.getpid() % 7))  # workers apart
    identity = spec.identity()
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", identity)
    elif stored != identity:
        differ = sorted(k for k in identity if stored.get(k) != identity[k])
        raise ConfigError(f"storage {storage} holds a study '{name}' of another search "
                          f"(differs in: {', '.join(differ)}); use another --storage or --name")
    return study


def _alive_here(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's: its heartbeat decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_interrupted(study: optuna.Study) -> list[int]:
    """Fail and retry the running trials whose worker process on this host is gone, and those
    whose heartbeat went stale (Optuna's rule); returns the numbers failed here."""
    storage = study._storage
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER)
        if worker and not _alive_here(worker):
            try:
                if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    failed.append(t.number)
                    RETRY(study, storage.get_trial(t._trial_id))
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first
    optuna.storages.fail_stale_trials(study)
    return failed


def counts(study: optuna.Study) -> tuple[int, int, int]:
    """(done, running, waiting): done = completed + failed with a reason."""
    done = running = waiting = 0
    for t in study.get_trials(deepcopy=False):
        failed_with_reason = t.state == TrialState.FAIL and FAILURE in t.user_attrs
        if t.state == TrialState.COMPLETE or failed_with_reason:
            done += 1
        elif t.state == TrialState.RUNNING:
            running += 1
        elif t.state == TrialState.WAITING:
            waiting += 1
    return done, running, waiting


def suggest(trial: optuna.Trial, space: dict) -> dict:
    values = {}
    for key, spec in sorted(space.items()):
        kind = spec[0]
        if kind == "choice":
            values[key] = trial.suggest_categorical(key, list(spec[1]))
        elif kind == "int":
            values[key] = trial.suggest_int(key, int(spec[1]), int(spec[2]))
        else:
            values[key] = trial.suggest_float(key, float(spec[1]), float(spec[2]),
                                              log=kind == "log_uniform")
    return values


def trial_config(cfg: ml_collections.ConfigDict, values: dict, seed: int,
                 split: str) -> ml_collections.ConfigDict:
    c = copy.deepcopy(cfg)
    for key, value in values.items():
        set_value(c, key, value)
    c.seed = seed
    c.eval.splits = (split,)
    c.eval.threshold_split = split
    c.eval.after_training = False
    c.train.progress_bar = False
    c.train.stop_on_nonfinite = True
    validate(c)
    try:
        selected_methods(c.model)  # each method's own checks of its hyperparameters
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return c


def make_objective(cfg: ml_collections.ConfigDict, spec: SearchSpec, out: Path, trials: int):
    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        if trial.user_attrs.get(DRAW, 0) >= trials:
            # Draws 0 .. trials-1 are the budget (a retry reuses its draw); a later one is a
            # second worker's overshoot and trains nothing.
            raise optuna.TrialPruned("surplus: the budget's draws are all taken")
        values = suggest(trial, spec.space)
        seed = spec.seed * 1000 + int(trial.user_attrs.get(DRAW, trial.number))
        trial.set_user_attr("seed", seed)
        try:
            c = trial_config(cfg, values, seed, spec.split)
        except ConfigError as e:  # a draw the method refuses (e.g. crossed thresholds)
            trial.set_user_attr(FAILURE, f"invalid setting: {e}")
            raise TrialFailed(str(e)) from e
        workdir = out / f"trial_{trial.number:04d}"
        # A retry names the trials it replaces (RetryHeartbeatStaleTrialCallback.retry_history).
        replaced = trial.study._storage.get_trial(trial._trial_id).system_attrs.get(
            "retry_history", [])
        for stale in [workdir] + [out / f"trial_{n:04d}" for n in replaced]:
            if stale.exists():
                shutil.rmtree(stale)  # a trial restarts from its start, never from a stale run
        start = time.perf_counter()
        try:
            train(c, workdir)
        except NonFiniteLoss as e:
            trial.set_user_attr(FAILURE, str(e))
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 1))
            raise TrialFailed(str(e)) from e
        result = evaluate(c, workdir, splits=[spec.split])["splits"][spec.split]
        for key in RECORDED:
            if key in result:
                trial.set_user_attr(key, float(result[key]))
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 1))
        return float(result[spec.metric])

    return objective


def best_trial(study: optuna.Study):
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def run_search(cfg: ml_collections.ConfigDict, spec: SearchSpec, trials: int, storage: str,
               out: str | Path, name: str | None = None, poll_seconds: float = 10.0,
               heartbeat_interval: int = 30, grace_period: int = 120, log=print) -> optuna.Study:
    """Run trials until `trials` are done (in this and any other worker); returns the study."""
    check_inputs(spec, cfg, trials)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = name or out.name
    study = open_study(spec, storage, name, heartbeat_interval, grace_period)
    objective = make_objective(cfg, spec, out, trials)
    while True:
        for number in reap_interrupted(study):
            log(f"[search] trial {number} was interrupted (its process is gone): re-run from "
                f"its start with the same setting")
        done, running, waiting = counts(study)
        if done >= trials:
            break
        if done + running < trials or waiting:
            ran = []
            study.optimize(objective, n_trials=1, catch=(TrialFailed,),
                           callbacks=[lambda _, frozen: ran.append(frozen)])
            last = ran[-1]
            if last.state == TrialState.PRUNED:
                continue  # a surplus draw (another worker took the last one)
            done, _, _ = counts(study)
            best = best_trial(study)
            outcome = (f"{last.value:.2f}" if last.state == TrialState.COMPLETE
                       else last.user_attrs.get(FAILURE, last.state.name))
            log(f"[search] trial {last.number}: {outcome} ({done}/{trials} done; best "
                + (f"{best.value:.2f} at trial {best.number})" if best else "none yet)"))
        else:
            time.sleep(poll_seconds)  # the rest is running in other workers
    return study
