"""Does the input pipeline starve the train step? The default run's step rate fed by the real
pipeline against the same step fed from batches already in memory.

    python benchmarks/bench_pipeline_starvation.py [--config configs/synthetic_cam.py:finegrained]
        [--steps 60] [--rounds 2] [--out docs/pipeline_starvation.json] [--config.key=value ...]

Both feeds run the loop's own pieces (`build_training`, `training_batches`, `pipeline.iterate`,
`sharding.put_batch`, the jitted step), alternating `--rounds` times so that a machine shared with
other work loads both alike. Also timed: the pipeline alone (batches pulled, no step). The
pipeline starves the step when `pipeline / in_memory` is clearly below 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax

from wsolax import datasets, sharding
from wsolax.config import load_config
from wsolax.data import pipeline
from wsolax.training.loop import build_training, start_from_converted, training_batches
from wsolax.training.objectives import build_objective
from wsolax.training.step import make_train_step


def _device_batch(batch, mesh):
    return sharding.put_batch({"image": batch["image"], "label": batch["label"]}, mesh)


def _time_steps(state, step_fn, batches, mesh, key):
    start = time.perf_counter()
    for batch in batches:
        state, metrics = step_fn(state, _device_batch(batch, mesh), key)
    jax.block_until_ready((state, metrics))
    return state, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/synthetic_cam.py:finegrained")
    p.add_argument("--steps", type=int, default=60, help="timed steps per feed and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None)
    args, overrides = p.parse_known_args()
    cfg = load_config(args.config, overrides)
    mesh = sharding.data_mesh()
    train_split = datasets.load_split(cfg.data, cfg.data.train_split)
    model, tx, _, state, steps_per_epoch, _ = build_training(cfg, len(train_split.image_ids), mesh)
    if cfg.model.init_from:
        state = start_from_converted(cfg, state, tx, mesh)
    step_fn = sharding.shard_step(make_train_step(model, tx, build_objective(cfg, steps_per_epoch)),
                                  mesh)
    key = jax.random.key(cfg.seed)
    batches = training_batches(cfg, train_split)
    stream = pipeline.iterate(batches, num_threads=cfg.data.num_threads)
    warm = [next(stream) for _ in range(args.warmup)]
    state, _ = _time_steps(state, step_fn, warm, mesh, key)  # compiles

    fed, held, pulled = [], [], []
    for _ in range(args.rounds):
        # The real feed: the pipeline produces while the step runs (dispatch is asynchronous).
        state, seconds = _time_steps(state, step_fn, (next(stream) for _ in range(args.steps)),
                                     mesh, key)
        fed.append(args.steps / seconds)
        start = time.perf_counter()
        in_memory = [next(stream) for _ in range(args.steps)]
        pulled.append(args.steps / (time.perf_counter() - start))
        state, seconds = _time_steps(state, step_fn, in_memory, mesh, key)
        held.append(args.steps / seconds)

    fed_rate, held_rate = statistics.median(fed), statistics.median(held)
    record = {
        "config": args.config, "overrides": overrides, "batch_size": cfg.train.batch_size,
        "num_threads": cfg.data.num_threads, "cache_images": bool(cfg.data.cache_images),
        "steps_per_round": args.steps, "rounds": args.rounds,
        "steps_per_s_pipeline": [round(x, 2) for x in fed],
        "steps_per_s_in_memory": [round(x, 2) for x in held],
        "batches_per_s_pipeline_alone": [round(x, 2) for x in pulled],
        "pipeline_over_in_memory": round(fed_rate / held_rate, 3),
        "machine": f"{platform.machine()}, {jax.device_count()} {jax.devices()[0].platform} "
                   f"device(s), {platform.processor() or 'cpu'}",
    }
    print(json.dumps(record, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
