"""A whole trained model from another code base (converted with a whole-model layout such as
`wsolevaluation`) as a wsolax run folder, so `python eval.py --workdir <folder>` scores it with
wsolax's evaluator exactly as it scores its own runs.

The folder holds a step-0 checkpoint (the converted weights, a fresh optimizer state) stamped with
the config's model definition, and the config; `train.py --resume` would fine-tune from it.
"""

from __future__ import annotations

from pathlib import Path

import jax
import ml_collections

from wsolax import sharding
from wsolax.checkpoint import Checkpointer, model_stamp
from wsolax.training.loop import build_training, save_config
from wsolax.training.state import model_variables
from wsolax.weights.convert import WeightError
from wsolax.weights.store import overlay


def write_eval_run(cfg: ml_collections.ConfigDict, converted: str | Path,
                   workdir: str | Path) -> Path:
    """Save the converted whole model `converted` as the checkpoint of a run in `workdir`."""
    workdir = Path(workdir)
    ckpt = Checkpointer(workdir / "checkpoints", keep=cfg.train.keep_checkpoints)
    try:
        if ckpt.latest_step() is not None:
            raise WeightError(f"{workdir} already holds checkpoints (latest step "
                              f"{ckpt.latest_step()}); choose another folder (nothing was "
                              f"overwritten)")
        mesh = sharding.data_mesh(jax.devices()[:1])
        # The step count only shapes the learning-rate schedule, never the state's shapes.
        _, tx, _, state, _, _ = build_training(cfg, cfg.train.batch_size, mesh)
        variables, fresh = overlay(jax.device_get(model_variables(state)), converted,
                                   backbone=cfg.model.backbone)
        if fresh:
            raise WeightError(f"{converted} lacks {len(fresh)} tensors of this model (e.g. "
                              f"{fresh[:3]}); a run folder to evaluate needs the whole model")
        params = variables["params"]
        state = state.replace(params=params, batch_stats=variables.get("batch_stats", {}),
                              opt_state=tx.init(params))
        ckpt.save(state, model_stamp(cfg, state.params), force=True)
        ckpt.wait()
    finally:
        ckpt.close()
    save_config(cfg, workdir)
    return workdir
