"""A run stops at its first non-finite loss term, names the step and the term in one line, and
keeps only checkpoints of finite steps (`train.stop_on_nonfinite`)."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.checkpoint import Checkpointer
from wsolax.cli import train_main
from wsolax.training.nonfinite import NonFiniteLoss, first_nonfinite, watched


def test_first_nonfinite_by_hand():
    window = [{"loss": jnp.float32(1.0), "loss_ce_x": jnp.float32(0.5), "grad_norm": 2.0,
               "accuracy": jnp.float32(float("nan"))},  # accuracy is not watched
              {"loss": jnp.float32(float("nan")), "loss_ce_x": jnp.float32(float("inf")),
               "grad_norm": 3.0, "accuracy": 0.1}]
    assert watched(window[0]) == ["loss_ce_x", "loss", "grad_norm"]
    assert first_nonfinite(window, 11) == (12, "loss_ce_x", math.inf)
    assert first_nonfinite(window[:1], 11) is None
    assert first_nonfinite([], 1) is None
    grads = [{"loss": 1.0, "grad_norm": float("inf")}]
    assert first_nonfinite(grads, 5) == (5, "grad_norm", math.inf)
    err = NonFiniteLoss(12, "loss_ce_x", math.inf, 10)
    assert "step 12" in str(err) and "loss_ce_x" in str(err) and "step 10" in str(err)


def _args(tmp_path, *extra):
    # A learning rate of 1e30 sends the tiny model's parameters (and the loss) past float32's
    # range within a few steps; every step is logged and checkpointed.
    return ["--config", "configs/synthetic_cam.py:runlocal", "--workdir", str(tmp_path / "run"),
            f"--config.data.root={tmp_path / 'data'}", "--config.model.width=4",
            "--config.optim.lr=1e30", "--config.optim.schedule=constant",
            "--config.optim.warmup_epochs=0", "--config.train.log_every_steps=1",
            "--config.train.checkpoint_every_steps=1", "--config.train.keep_checkpoints=100",
            "--config.train.progress_bar=False", "--no-eval", *extra]


@pytest.mark.slow
def test_train_py_stops_at_the_first_nonfinite_step_and_keeps_finite_checkpoints(tmp_path,
                                                                                    capsys):
    assert train_main(_args(tmp_path)) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training stopped at step "), err
    step = int(err[0].split("step ")[1].split(":")[0])
    term = err[0].split(": ")[2].split(" is ")[0]
    assert term in ("loss", "grad_norm")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    # Every logged step before it is finite; no step at or after it was logged.
    assert [r["step"] for r in rows] == list(range(1, step))
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in rows)
    ckpt = Checkpointer(tmp_path / "run" / "checkpoints")
    assert ckpt.latest_step() == step - 1 and str(step - 1) in err[0]
    ckpt.close()
    # Off, the same run trains on through the non-finite steps to its end.
    off = tmp_path / "off"
    assert train_main(_args(off, "--config.train.stop_on_nonfinite=False",
                            f"--config.train.max_steps={step + 2}")) == 0
    rows = [json.loads(line) for line in (off / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == step + 2 and not np.isfinite(rows[-1]["loss"])
