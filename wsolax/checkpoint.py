"""Orbax checkpoints of the train state plus a JSON stamp describing the model that wrote them.

The stamp lets resume and evaluation refuse a folder written by a different model with a clear
message naming the keys that differ, before Orbax fails deep inside a shape mismatch. A damaged
checkpoint (a truncated file, say, after a crash or a full disk) is reported with its step and file,
and the newest one that restores is used instead; nothing is ever deleted.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import jax
import ml_collections
import orbax.checkpoint as ocp

from wsolax import sharding
from wsolax.models.wsol_model import WSOLModel, init_key, init_variables
from wsolax.registry import build_model, selected_methods


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used with this config."""


# What defines the model and its training objective. model.init_from is only where a run started,
# so it may differ; of model.methods only the selected methods count: their names and every
# hyperparameter (defaults included), not sections of methods the model does not use.
_DATA_KEYS = ("num_classes", "crop_size")
_SKIPPED_MODEL_KEYS = {"init_from", "methods"}


def model_definition(cfg: ml_collections.ConfigDict) -> dict:
    """Flat {"model.backbone": ..., "data.crop_size": ...} of everything that defines the model."""
    model = json.loads(cfg.model.to_json_best_effort())
    out = {f"model.{k}": v for k, v in model.items() if k not in _SKIPPED_MODEL_KEYS}
    selected = selected_methods(cfg.model)
    out["model.methods"] = [s.method.name for s in selected]
    for s in selected:
        values = json.loads(json.dumps(dataclasses.asdict(s.hparams)))
        out.update({f"model.methods.{s.method.name}.{k}": v for k, v in sorted(values.items())})
    out.update({f"data.{k}": json.loads(json.dumps(cfg.data[k])) for k in _DATA_KEYS})
    return out


def model_stamp(cfg: ml_collections.ConfigDict, params) -> dict:
    """What must match for a checkpoint to be loadable: the model's definition and param shapes."""
    shapes = jax.tree_util.tree_map_with_path(lambda p, x: list(x.shape), params)
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(shapes)}
    return {"definition": model_definition(cfg), "num_classes": cfg.data.num_classes,
            "param_shapes": flat}


def _stored_definition(stored: dict) -> dict:
    if "definition" in stored:
        return _moved_keys(stored["definition"])
    # Stamps of wsolax before the definition existed: the model section and the class count.
    out = {f"model.{k}": v for k, v in stored.get("model", {}).items()
           if k not in _SKIPPED_MODEL_KEYS}
    out["data.num_classes"] = stored.get("num_classes")
    return out


def _moved_keys(definition: dict) -> dict:
    """A stamp written before Where to Look became a method (head "where_to_look", settings in
    model.wtl) in today's keys, so those runs still resume and evaluate."""
    if definition.get("model.head") != "where_to_look":
        return definition
    out = {k: v for k, v in definition.items() if not k.startswith("model.wtl.")}
    out["model.head"] = "gap_linear"
    out.update({f"model.methods.where_to_look.{k.removeprefix('model.wtl.')}": v
                for k, v in definition.items() if k.startswith("model.wtl.")})
    return out


def definition_differences(stored: dict, current: dict,
                           free: frozenset[str] = frozenset()) -> list[str]:
    """'key: checkpoint <old> vs config <new>' for every key both define differently (keys in
    `free` excepted)."""
    return [f"{k}: checkpoint {json.dumps(stored[k])} vs config {json.dumps(current[k])}"
            for k in sorted(set(stored) & set(current) - free) if stored[k] != current[k]]


def eval_reading_keys(cfg: ml_collections.ConfigDict) -> frozenset[str]:
    """The definition keys of the selected methods' eval-time readings (Method.eval_readings)."""
    return frozenset(f"model.methods.{s.method.name}.{field}"
                     for s in selected_methods(cfg.model) for field in s.method.eval_readings)


_JSON_FILES = ("_CHECKPOINT_METADATA", "stamp/metadata", "state/_METADATA", "state/_sharding")


def describe_damage(step_dir: Path, error: BaseException) -> str:
    """Which file of a checkpoint that failed to restore is damaged, as well as it can be told."""
    for name in _JSON_FILES + tuple(str(p.relative_to(step_dir)) for p in
                                    sorted(step_dir.glob("state/array_metadatas/*"))):
        path = step_dir / name
        if not path.is_file():
            if name in ("_CHECKPOINT_METADATA", "stamp/metadata", "state/_METADATA"):
                return f"{path} is missing"
            continue
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            return f"{path} is not valid JSON ({e})"
    chain, e = [], error
    while e is not None and len(chain) < 10:  # the cause names the array, the outer error not
        chain.append(" ".join(str(e).split()))
        e = e.__cause__ or e.__context__
    message = next((m for m in reversed(chain) if "Error reading" in m), chain[0])
    size = re.search(r"value of size (\d+)", message)
    if size:  # TensorStore names the array, not the file; a truncated file has that size
        hits = [p for p in step_dir.rglob("*") if p.is_file() and p.stat().st_size == int(size[1])]
        if len(hits) == 1:
            return f"{hits[0]} is truncated ({size[1]} bytes): {message[:300]}"
    return f"{step_dir}: {message[:300]}"


def _restore_args(abstract, partial: bool):
    if not partial:
        return ocp.args.StandardRestore(abstract)
    restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding), abstract)
    return ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args, partial_restore=True)


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
        self.damaged: list[int] = []  # steps found damaged by the last restore

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state, stamp: dict, force: bool = False) -> None:
        step = int(jax.device_get(state.step))
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), stamp=ocp.args.JsonSave(stamp)), force=force)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def check_compatible(self, stamp: dict, step: int | None = None,
                         free: frozenset[str] = frozenset()) -> None:
        """Refuse a checkpoint of another model; keys in `free` (eval-time readings, when
        evaluating) may differ."""
        step = self.latest_step() if step is None else step
        stored = self.manager.restore(step, args=ocp.args.Composite(stamp=ocp.args.JsonRestore())).stamp
        differences = definition_differences(_stored_definition(stored), stamp["definition"],
                                             free)
        if not differences and stored["param_shapes"] != stamp["param_shapes"]:
            differences = ["parameter shapes differ (a model change the config does not show)"]
        if differences:
            raise CheckpointError(
                f"checkpoint folder {self.directory} was written by a different model than this "
                f"config describes:\n  " + "\n  ".join(differences)
                + "\nuse another workdir or the config that wrote it")

    def restore(self, target, stamp: dict, step: int | None = None, partial: bool = False,
                free: frozenset[str] = frozenset()):
        """Restore into the structure/shardings of `target` (a train state) after checking the
        stamp (keys in `free` may differ). `partial`: `target` is a dict of some of the state's
        fields (evaluation restores step, params and batch_stats, and never needs the
        optimizer's state).

        Without `step`: the newest checkpoint that restores; each damaged newer one is reported on
        stderr (step and file) and listed in `self.damaged`, and left where it is.
        """
        steps = sorted(self.manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        self.damaged, problems = [], []
        for s in steps:
            try:
                self.check_compatible(stamp, s, free)
                restored = self.manager.restore(s, args=ocp.args.Composite(
                    state=_restore_args(abstract, partial)))
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many kinds
                problem = describe_damage(self.directory / str(s), e)
                problems.append(f"step {s}: {problem}")
                self.damaged.append(s)
                print(f"warning: checkpoint step {s} does not restore: {problem}; trying an older "
                      f"one (nothing is deleted)", file=sys.stderr)
                continue
            return restored.state
        raise CheckpointError(f"no checkpoint in {self.directory} restores:\n  "
                              + "\n  ".join(problems))

    def set_aside(self, steps: list[int]) -> list[Path]:
        """Rename damaged step folders to `<step>.damaged` (kept, not deleted) so that a resumed
        run can write those steps again."""
        moved = []
        for s in steps:
            source = self.directory / str(s)
            target = self.directory / f"{s}.damaged"
            n = 1
            while target.exists():
                target, n = self.directory / f"{s}.damaged{n}", n + 1
            source.rename(target)
            moved.append(target)
        self.manager.reload()
        return moved

    def close(self) -> None:
        self.manager.close()


def restore_model(cfg: ml_collections.ConfigDict, workdir: str | Path, mesh
                  ) -> tuple[WSOLModel, dict, int]:
    """(model, variables, step) of the latest checkpoint in `workdir`, replicated over `mesh`, for
    evaluation or export: no optimizer and no training data are needed. A checkpoint of another
    model is refused with the differing keys named; the methods' eval-time readings may differ
    (the config's are used)."""
    model = build_model(cfg)
    shape = (1, cfg.data.crop_size, cfg.data.crop_size, 3)
    repl = sharding.replicated(mesh)
    abstract = jax.eval_shape(lambda k: init_variables(model, k, shape), init_key(cfg.seed))
    target = {"step": jax.ShapeDtypeStruct((), "int32", sharding=repl),
              **jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                             abstract)}
    ckpt = Checkpointer(Path(workdir) / "checkpoints")
    try:
        if ckpt.latest_step() is None:
            raise CheckpointError(f"no checkpoint in {Path(workdir) / 'checkpoints'}; train first")
        restored = ckpt.restore(target, model_stamp(cfg, abstract["params"]), partial=True,
                                free=eval_reading_keys(cfg))
    finally:
        ckpt.close()
    variables = {"params": restored["params"]}
    if restored["batch_stats"]:
        variables["batch_stats"] = restored["batch_stats"]
    return model, variables, int(jax.device_get(restored["step"]))
