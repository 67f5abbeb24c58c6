"""A checkpoint may be evaluated under another test-time reading of its method (DFM's
`eval_output`, Where to Look's `eval_input` / `test_branch`: docs/methods.md, "Readings"), and the
config's reading is the one applied; every other difference of the model is still refused."""

from __future__ import annotations

import numpy as np
import pytest

from wsolax import sharding
from wsolax.checkpoint import CheckpointError, restore_model
from wsolax.config import load_config
from wsolax.training.loop import train

pytestmark = pytest.mark.slow  # trains


def _cfg(tmp, *extra):
    return load_config("configs/synthetic_dfm.py:runlocal", [
        f"--config.data.root={tmp / 'data'}", "--config.model.width=4",
        "--config.train.max_steps=2", "--config.eval.after_training=False",
        "--config.train.progress_bar=False", f"--config.workdir={tmp / 'run'}", *extra])


def test_dfm_checkpoint_evaluates_under_either_test_reading(tmp_path):
    cfg = _cfg(tmp_path)
    train(cfg, tmp_path / "run")
    mesh = sharding.data_mesh()
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    outputs = {}
    for reading in ("residual", "identity"):
        model, variables, step = restore_model(
            _cfg(tmp_path, f"--config.model.methods.dfm.eval_output={reading}"),
            tmp_path / "run", mesh)
        assert step == 2
        outputs[reading] = np.asarray(model.apply(variables, x, train=False)["logits"])
    # The readings differ at test time (F + F against F), so the logits do.
    assert np.abs(outputs["residual"] - outputs["identity"]).max() > 1e-4
    with pytest.raises(CheckpointError, match="model.methods.dfm.alpha"):
        restore_model(_cfg(tmp_path, "--config.model.methods.dfm.alpha=0.5"), tmp_path / "run",
                      mesh)
