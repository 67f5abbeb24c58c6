"""Orbax checkpoints of the train state plus a JSON stamp describing the model that wrote them.

The stamp lets resume and evaluation refuse a folder written by a different model with a clear
message, before Orbax fails deep inside a shape mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import ml_collections
import orbax.checkpoint as ocp

from wsolax.training.state import TrainState


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used with this config."""


def model_stamp(cfg: ml_collections.ConfigDict, state: TrainState) -> dict:
    """What must match for a checkpoint to be loadable: model config, class count, param shapes."""
    shapes = jax.tree_util.tree_map_with_path(lambda p, x: list(x.shape), state.params)
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(shapes)}
    return {
        "model": json.loads(cfg.model.to_json_best_effort()),
        "num_classes": cfg.data.num_classes,
        "param_shapes": flat,
    }


def _describe(stamp: dict) -> str:
    m = stamp.get("model", {})
    return f"backbone={m.get('backbone')!r}, width={m.get('width')}, classes={stamp.get('num_classes')}"


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state: TrainState, stamp: dict, force: bool = False) -> None:
        step = int(jax.device_get(state.step))
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), stamp=ocp.args.JsonSave(stamp)), force=force)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def check_compatible(self, stamp: dict, step: int | None = None) -> None:
        step = self.latest_step() if step is None else step
        stored = self.manager.restore(step, args=ocp.args.Composite(stamp=ocp.args.JsonRestore())).stamp
        if stored["param_shapes"] != stamp["param_shapes"] or stored["num_classes"] != stamp["num_classes"]:
            raise CheckpointError(
                f"checkpoint folder {self.directory} was written by a different model "
                f"({_describe(stored)}) than this config describes ({_describe(stamp)}); "
                f"use another workdir or the config that wrote it")

    def restore(self, target: TrainState, stamp: dict, step: int | None = None) -> TrainState:
        """Restore into the structure/shardings of `target` after checking the stamp."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        self.check_compatible(stamp, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))
        return restored.state

    def close(self) -> None:
        self.manager.close()
