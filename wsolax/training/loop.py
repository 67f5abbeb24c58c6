"""The training loop: data, model, optimizer, sharded jitted steps, logging, checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from wsolax import datasets, sharding
from wsolax.checkpoint import CheckpointError, Checkpointer, model_stamp
from wsolax.data import pipeline
from wsolax.localization.cams import make_cam_extractor
from wsolax.localization.run import score_split
from wsolax.models.wsol_model import init_key
from wsolax.registry import build_model, selected_methods
from wsolax.training.nonfinite import NonFiniteLoss, first_nonfinite
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import TrainState, init_state, model_variables
from wsolax.training.step import make_train_step
from wsolax.training.writers import MetricWriter
from wsolax.weights import overlay


@dataclass
class TrainResult:
    state: TrainState
    steps_done: int
    total_steps: int
    workdir: Path
    images_per_second: float


def save_config(cfg: ml_collections.ConfigDict, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(cfg.to_json_best_effort(indent=2))


def build_training(cfg: ml_collections.ConfigDict, num_train_images: int, mesh):
    """Model, optimizer, initial state and step count; shared by training and resume."""
    steps_per_epoch = num_train_images // cfg.train.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"config key 'train.batch_size': {cfg.train.batch_size} is larger than the "
                         f"{num_train_images} training images")
    total_steps = steps_per_epoch * cfg.train.epochs
    model = build_model(cfg)
    tx, schedule = make_optimizer(cfg.optim, steps_per_epoch, total_steps)
    init = jax.jit(lambda key: init_state(
        model, tx, key, (1, cfg.data.crop_size, cfg.data.crop_size, 3)),
        out_shardings=sharding.replicated(mesh))
    state = init(init_key(cfg.seed))
    return model, tx, schedule, state, steps_per_epoch, total_steps


def training_batches(cfg: ml_collections.ConfigDict, train_split):
    """The training input pipeline (a grain dataset indexed by step) the config describes."""
    return pipeline.train_batches(
        train_split, batch_size=cfg.train.batch_size, resize_size=cfg.data.resize_size,
        crop_size=cfg.data.crop_size, seed=cfg.seed, mean=cfg.data.mean, std=cfg.data.std,
        max_boxes=cfg.data.max_boxes, cache_images=cfg.data.cache_images,
        resize=cfg.data.resize)


def start_from_converted(cfg: ml_collections.ConfigDict, state: TrainState, tx, mesh) -> TrainState:
    """Overlay converted ImageNet weights (`python -m wsolax.convert`) onto a fresh state."""
    variables, fresh = overlay(jax.device_get(model_variables(state)), cfg.model.init_from,
                               backbone=cfg.model.backbone)
    params = variables["params"]
    print(f"initialised from {cfg.model.init_from}; {len(fresh)} tensors start fresh"
          + (f" (e.g. {', '.join(fresh[:4])})" if fresh else ""))
    new = state.replace(params=params, batch_stats=variables.get("batch_stats", {}),
                        opt_state=tx.init(params))
    return jax.device_put(new, sharding.replicated(mesh))


def train(cfg: ml_collections.ConfigDict, workdir: str | Path | None = None, resume: bool = False,
          devices=None) -> TrainResult:
    workdir = Path(workdir or cfg.workdir)
    selected_methods(cfg.model)  # a method's bad hyperparameter fails before any data is read
    mesh = sharding.data_mesh(devices)
    sharding.check_batch_size(cfg.train.batch_size, mesh, "train.batch_size")
    train_split = datasets.load_split(cfg.data, cfg.data.train_split,
                                      verify_images=cfg.data.verify_images)
    datasets.check_evaluation_splits(cfg)

    model, tx, schedule, state, steps_per_epoch, total_steps = build_training(
        cfg, len(train_split.image_ids), mesh)
    stamp = model_stamp(cfg, state.params)
    ckpt = Checkpointer(workdir / "checkpoints", keep=cfg.train.keep_checkpoints)
    if ckpt.latest_step() is not None:
        if not resume:
            raise CheckpointError(
                f"{workdir} already holds checkpoints (latest step {ckpt.latest_step()}); pass "
                f"--resume to continue from it, or choose another workdir (nothing was overwritten)")
        state = ckpt.restore(state, stamp)
        newer = [s for s in ckpt.damaged if s > int(jax.device_get(state.step))]
        if newer and jax.process_index() == 0:
            for path in ckpt.set_aside(newer):
                print(f"kept the damaged checkpoint as {path}; training continues from step "
                      f"{int(jax.device_get(state.step))}")
    elif cfg.model.init_from:
        state = start_from_converted(cfg, state, tx, mesh)
    save_config(cfg, workdir)

    start = int(jax.device_get(state.step))
    end = total_steps if not cfg.train.max_steps else min(total_steps, cfg.train.max_steps)
    run_key = jax.random.key(cfg.seed)
    step_fn = sharding.shard_step(make_train_step(
        model, tx, build_objective(cfg, steps_per_epoch)), mesh)
    batches = training_batches(cfg, train_split)
    # Only process 0 writes; rows past the step training starts from (logged after the last
    # checkpoint that finalised, by a run that was killed) are dropped: every step appears once.
    writer = MetricWriter(workdir, resume_step=start, enabled=jax.process_index() == 0)
    bar = tqdm(total=end, initial=start, desc="train", unit="step", dynamic_ncols=True,
               disable=not cfg.train.progress_bar)
    val_every = int(cfg.train.val_every_epochs * steps_per_epoch)
    validate = make_validator(cfg, model, mesh) if val_every else None
    images_per_second = 0.0
    window, window_start, window_steps = [], time.perf_counter(), 0
    last_saved = ckpt.latest_step()

    def stop_if_nonfinite(fetched: list[dict], done: int) -> None:
        """Before logging or saving: raise at the window's first non-finite step."""
        if not cfg.train.stop_on_nonfinite:
            return
        found = first_nonfinite(fetched, done - len(fetched) + 1)
        if found is not None:
            ckpt.wait()
            raise NonFiniteLoss(*found, last_checkpoint=last_saved)

    try:
        iterator = pipeline.iterate(batches, start_step=start, num_threads=cfg.data.num_threads)
        for step in range(start, end):
            batch = next(iterator)
            batch = sharding.put_batch({"image": batch["image"], "label": batch["label"]}, mesh)
            state, metrics = step_fn(state, batch, run_key)
            window.append(metrics)
            window_steps += 1
            done = step + 1
            log_now = done % cfg.train.log_every_steps == 0 or done == end
            checkpoint_now = done % cfg.train.checkpoint_every_steps == 0 or done == end
            if log_now or checkpoint_now:
                fetched = jax.device_get(window)  # the window's metrics on the host, read once
                stop_if_nonfinite(fetched, done)
            if log_now:
                means = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
                elapsed = time.perf_counter() - window_start
                images_per_second = window_steps * cfg.train.batch_size / max(elapsed, 1e-9)
                means.update(lr=float(schedule(step)), images_per_second=images_per_second,
                             epoch=done / steps_per_epoch)
                writer.write(done, means)
                bar.set_postfix(loss=f"{means['loss']:.3f}", acc=f"{means['accuracy']:.3f}",
                                img_s=f"{images_per_second:.0f}")
                window, window_start, window_steps = [], time.perf_counter(), 0
            bar.update(1)
            if checkpoint_now:
                ckpt.save(state, stamp)
                last_saved = done
            if val_every and (done % val_every == 0 or done == end):
                writer.write(done, validate(state), prefix="val")
        if last_saved != end:
            ckpt.save(state, stamp)
        ckpt.wait()
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    return TrainResult(state=state, steps_done=end - start, total_steps=total_steps,
                       workdir=workdir, images_per_second=images_per_second)


def make_validator(cfg: ml_collections.ConfigDict, model, mesh):
    """`validate(state) -> dict`: scalar metrics on the validation split (logged as `val/...`).
    The CAM extractor is compiled once and reused at every validation."""
    extractor = make_cam_extractor(model, mesh, (cfg.data.crop_size, cfg.data.crop_size),
                                   scoremap=cfg.eval.scoremap)

    def validate(state: TrainState) -> dict:
        result, _ = score_split(cfg, cfg.eval.threshold_split, extractor, model_variables(state), mesh)
        return {k: result[k] for k in VAL_KEYS if k in result}

    return validate


VAL_KEYS = ("top1_cls", "top5_cls", "max_box_acc", "max_box_acc_v2", "pxap")
