"""Two JAX processes on 127.0.0.1 (gloo CPU collectives) train like one process with two devices,
bit for bit, checkpoint once, write metrics once, and resume bit-identically; a killed process
stops the other with a clear message; two processes evaluate to the last digit of one."""

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from forced_devices import forced_devices_env
from test_end_to_end import CONFIG, tiny_overrides

from wsolax import datasets, sharding
from wsolax.config import load_config
from wsolax.checkpoint import Checkpointer, model_stamp
from wsolax.training.loop import build_training

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(tmp: Path, workdir: Path, steps: int, *extra: str) -> list[str]:
    overrides = tiny_overrides(tmp, **{"workdir": str(workdir), "train.max_steps": steps,
                                       "train.epochs": 10, "data.synthetic.num_train": 64})
    return [sys.executable, "train.py", "--config", CONFIG, "--no-eval", *overrides, *extra]


def _two_processes(tmp: Path, workdir: Path, steps: int, *extra: str) -> list[str]:
    port = _free_port()
    procs = [subprocess.Popen(
        _argv(tmp, workdir, steps, "--multihost", "--coordinator", f"127.0.0.1:{port}",
              "--num-processes", "2", "--process-id", str(i), *extra),
        cwd=ROOT, env=forced_devices_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return outs


def _state(tmp: Path, workdir: Path, step: int | None = None):
    """The train state of `workdir`'s checkpoint at `step` (the newest by default)."""
    cfg = load_config(CONFIG, tiny_overrides(tmp, **{"train.epochs": 10,
                                                     "data.synthetic.num_train": 64}))
    # The whole train state (optimizer included): resuming must continue bit for bit.
    mesh = sharding.data_mesh(jax.devices()[:1])
    _, _, _, state, _, _ = build_training(cfg, 64, mesh)
    ckpt = Checkpointer(workdir / "checkpoints")
    try:
        return ckpt.restore(state, model_stamp(cfg, state.params), step=step)
    finally:
        ckpt.close()


REFERENCE_STEPS = 30


@pytest.fixture
def reference(once, tmp_path_factory) -> Path:
    """The workdir of one uninterrupted process with two devices, trained REFERENCE_STEPS steps
    with every checkpoint kept (one every 2 steps): what the two-process runs, stopped and resumed,
    must equal at each step they reach. One run per test session, for every test that asks."""
    def run() -> str:
        tmp = tmp_path_factory.mktemp("reference")
        subprocess.run(_argv(tmp, tmp / "run", REFERENCE_STEPS,
                             f"--config.train.keep_checkpoints={REFERENCE_STEPS // 2}"),
                       cwd=ROOT, env=forced_devices_env(2), check=True, capture_output=True, timeout=240)
        return str(tmp / "run")
    return Path(once("multiprocess_reference", run))


def _assert_same(a, b) -> None:
    assert int(a.step) == int(b.step)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_two_processes_train_and_resume_like_one_process_with_two_devices(tmp_path, reference):
    two = tmp_path / "two_processes"
    outs = _two_processes(tmp_path, two, 6)
    assert all("trained 6 steps" in out for out in outs)
    _assert_same(_state(tmp_path, two), _state(tmp_path, reference, step=6))
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # written by process 0 only
    assert len(list((two / "tensorboard").iterdir())) == 1
    _two_processes(tmp_path, two, 10, "--resume")
    _assert_same(_state(tmp_path, two), _state(tmp_path, reference, step=10))


def test_an_incomplete_process_setup_is_refused_naming_what_is_missing(tmp_path):
    out = subprocess.run(_argv(tmp_path, tmp_path / "run", 2, "--multihost", "--coordinator",
                               "127.0.0.1:1"), cwd=ROOT, env=forced_devices_env(1), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "needs all three of --coordinator" in out.stderr


def test_a_killed_process_stops_the_other_with_a_clear_message_and_both_resume(tmp_path,
                                                                               reference):
    workdir = tmp_path / "killed"
    # The dataset exists before the processes start (they would both generate it at once).
    cfg = load_config(CONFIG, tiny_overrides(tmp_path, **{"data.synthetic.num_train": 64}))
    datasets.dataset_roots(cfg.data)
    port = _free_port()
    procs = [subprocess.Popen(
        _argv(tmp_path, workdir, 100_000, "--multihost", "--coordinator", f"127.0.0.1:{port}",
              "--num-processes", "2", "--process-id", str(i), "--heartbeat-timeout", "10"),
        cwd=ROOT, env=forced_devices_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 8):
        early = [p.poll() for p in procs]
        if time.monotonic() > deadline or early != [None, None]:
            for p in procs:
                p.kill()
            raise AssertionError(f"exit codes {early}: {[p.communicate()[1][-3000:] for p in procs]}")
        time.sleep(0.2)
    procs[1].kill()
    killed_at = time.monotonic()
    _, err = procs[0].communicate(timeout=120)
    waited = time.monotonic() - killed_at
    procs[1].communicate()
    # Usually the peer watcher notices first (exit 3, its message). Under load the next gloo
    # collective can fail first, and XLA aborts the process (SIGABRT) naming the failed collective:
    # it still stops promptly instead of hanging, which is what must hold; the clearer message in
    # that case is open work (watching the peers more often does not remove the race).
    assert waited < 60, (procs[0].returncode, waited, err[-2000:])
    if procs[0].returncode == 3:
        assert "error: process(es) [1] of 2 stopped; process 0 stops too" in err
    else:
        assert procs[0].returncode == -6 and "Gloo" in err, (procs[0].returncode, err[-2000:])
    # Both restarted with --resume continue from the last complete checkpoint, bit-identically to
    # an uninterrupted one-process run with two devices.
    _two_processes(tmp_path, workdir, REFERENCE_STEPS, "--resume")
    _assert_same(_state(tmp_path, workdir), _state(tmp_path, reference, step=REFERENCE_STEPS))


def test_two_processes_evaluate_to_the_last_digit_of_one(tmp_path):
    run = tmp_path / "run"
    subprocess.run(_argv(tmp_path, run, 4), cwd=ROOT, env=forced_devices_env(1), check=True,
                   capture_output=True, timeout=240)
    shutil.copytree(run, tmp_path / "run2")
    overrides = tiny_overrides(tmp_path, **{"train.epochs": 10, "data.synthetic.num_train": 64})
    evaluate = [sys.executable, "eval.py", "--config", CONFIG, *overrides]
    # The same per-device batches as the two processes: one process with two devices. (One
    # device with the whole batch is another float32 computation: on this tiny model it moved
    # one val image's box across IoU 0.5 at one threshold and so the chosen tau.)
    subprocess.run(evaluate + [f"--workdir={run}"], cwd=ROOT, env=forced_devices_env(2), check=True,
                   capture_output=True, timeout=240)
    port = _free_port()
    procs = [subprocess.Popen(evaluate + [f"--workdir={tmp_path / 'run2'}", "--multihost",
                                          "--coordinator", f"127.0.0.1:{port}", "--num-processes",
                                          "2", "--process-id", str(i)],
                              cwd=ROOT, env=forced_devices_env(1), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    one = json.loads((run / "eval" / "metrics.json").read_text())
    two = json.loads((tmp_path / "run2" / "eval" / "metrics.json").read_text())
    for summary in (one, two):
        for split in summary["splits"].values():
            split.pop("overlays")
    assert one == two and one["splits"]["test"]["num_images"] == 16
    for split in ("val", "test"):  # every curve, exactly
        a = np.load(run / "eval" / f"curves_{split}.npz")
        b = np.load(tmp_path / "run2" / "eval" / f"curves_{split}.npz")
        assert a.files == b.files and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a.files)


_FINISH_LATE = """
import sys, time
from wsolax.training import distributed
distributed.initialize(distributed.ProcessSetup("127.0.0.1:{port}", 2, int(sys.argv[1]), 30))
if sys.argv[1] == "0":
    time.sleep(4)  # process 0 still writing its last checkpoint, say; its peer is done
start = time.monotonic()
distributed.finish()
print(f"done, finish() took {{time.monotonic() - start:.3f}} s", flush=True)
"""


def test_a_process_that_finishes_first_waits_for_the_others():
    # Without the wait at the end, the first process to finish exits and the other's peer watcher
    # may take that for a death (exit code 3 while it is still working). What happens without
    # finish() depends on timing (jax's own exit-time shutdown sometimes holds the early process
    # long enough, the CI of session 10 saw both exit 0), so the test checks what finish()
    # promises instead: the early process waits there for the late one, and both end cleanly.
    script = _FINISH_LATE.format(port=_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=ROOT, env=forced_devices_env(1),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    waited = [float(re.search(r"finish\(\) took ([0-9.]+) s", out).group(1)) for out, _ in outs]
    # Both leave initialize() together (it is a barrier), so process 1 waits about the 4 s sleep.
    assert waited[1] > 2.0 and waited[0] < 2.0, (waited, outs)
