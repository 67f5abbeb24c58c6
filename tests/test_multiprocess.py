"""Two JAX processes on 127.0.0.1 (gloo CPU collectives) train like one process with two devices,
bit for bit, checkpoint once, write metrics once, and resume bit-identically."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from test_end_to_end import CONFIG, tiny_overrides

from wsolax.config import load_config
from wsolax.training import sharding
from wsolax.training.loop import restore_for_eval

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")


def _argv(tmp: Path, workdir: Path, steps: int, *extra: str) -> list[str]:
    overrides = tiny_overrides(tmp, **{"workdir": str(workdir), "train.max_steps": steps,
                                       "train.epochs": 10, "data.synthetic.num_train": 64})
    return [sys.executable, "train.py", "--config", CONFIG, "--no-eval", *overrides, *extra]


def _two_processes(tmp: Path, workdir: Path, steps: int, *extra: str) -> list[str]:
    port = _free_port()
    procs = [subprocess.Popen(
        _argv(tmp, workdir, steps, "--multihost", "--coordinator", f"127.0.0.1:{port}",
              "--num-processes", "2", "--process-id", str(i), *extra),
        cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return outs


def _state(tmp: Path, workdir: Path):
    cfg = load_config(CONFIG, tiny_overrides(tmp, **{"train.epochs": 10,
                                                     "data.synthetic.num_train": 64}))
    return restore_for_eval(cfg, workdir, sharding.data_mesh(jax.devices()[:1]))[1]


def _assert_same(a, b) -> None:
    assert int(a.step) == int(b.step)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_two_processes_train_and_resume_like_one_process_with_two_devices(tmp_path):
    one, two = tmp_path / "one_process", tmp_path / "two_processes"
    # Reference: one process, two devices, 6 steps then resumed to 10.
    for steps, extra in ((6, ()), (10, ("--resume",))):
        subprocess.run(_argv(tmp_path, one, steps, *extra), cwd=ROOT, env=_env(2), check=True,
                       capture_output=True, timeout=240)
        if steps == 6:
            reference_6 = _state(tmp_path, one)
    outs = _two_processes(tmp_path, two, 6)
    assert all("trained 6 steps" in out for out in outs)
    _assert_same(_state(tmp_path, two), reference_6)
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # written by process 0 only
    assert len(list((two / "tensorboard").iterdir())) == 1
    _two_processes(tmp_path, two, 10, "--resume")
    _assert_same(_state(tmp_path, two), _state(tmp_path, one))


def test_an_incomplete_process_setup_is_refused_naming_what_is_missing(tmp_path):
    out = subprocess.run(_argv(tmp_path, tmp_path / "run", 2, "--multihost", "--coordinator",
                               "127.0.0.1:1"), cwd=ROOT, env=_env(1), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "needs all three of --coordinator" in out.stderr
