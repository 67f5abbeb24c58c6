"""Train every registered method two float64 steps on fixed data, sharded over each of the given
device counts, and print per device count and method the losses, a parameter checksum and the
shardings as one JSON line.

Launched by tests/test_method_contract.py in a subprocess, because the device count (XLA_FLAGS)
must be set before JAX starts: `python tests/method_sharding_worker.py 1 8` with 8 devices forced
runs all the methods on a 1-device mesh (the first device) and on all 8, in one process that starts
JAX once and initialises each method once (the same initial state, put on each mesh).
"""

import json
import sys

import jax
import numpy as np
from method_contract_configs import IMAGE, contract_methods, tiny_method_config

from wsolax import sharding
from wsolax.models.wsol_model import init_key
from wsolax.registry import build_model
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step

BATCH = 16
STEPS = 2


def train(name: str, meshes) -> list[dict]:
    cfg = tiny_method_config(name, "float64")
    # Clipped as tests/sharding_worker.py clips Where to Look: on the tiny random model its fusion
    # term (loss ~112 at the start) takes unclipped SGD (lr 0.1, the head's x10) to ~9e5 in one
    # step and ~1e75 in three, where agreeing to rtol 1e-9 says little. Clipped it reads 112 -> 151,
    # and the other methods' losses stay between 2 and 6 over four steps.
    cfg.optim.clip_grad_norm = 5.0
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    initial = jax.jit(lambda k: init_state(model, tx, k, (1, IMAGE, IMAGE, 3)))(init_key(0))
    return [_train_on(mesh, cfg, model, tx, initial) for mesh in meshes]


def _train_on(mesh, cfg, model, tx, initial) -> dict:
    # A copy: the step donates its state, and `initial` serves the next mesh too.
    state = jax.device_put(initial, sharding.replicated(mesh), may_alias=False)
    step = sharding.shard_step(make_train_step(model, tx, build_objective(cfg, 10)), mesh)
    rng = np.random.default_rng(0)
    losses, shards = [], set()
    for _ in range(STEPS):
        data = {"image": rng.normal(size=(BATCH, IMAGE, IMAGE, 3)),
                "label": rng.integers(0, cfg.data.num_classes, BATCH).astype(np.int32)}
        batch = sharding.put_batch(data, mesh)
        shards.add(len(batch["image"].sharding.device_set))
        state, metrics = step(state, batch, jax.random.key(7))
        losses.append(float(metrics["loss"]))
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(state.params)]
    return {"losses": losses, "param_sum": float(sum(np.abs(x).sum() for x in leaves)),
            "replicated_on": sorted({len(x.sharding.device_set)
                                     for x in jax.tree.leaves(state.params)}),
            "batch_shards": max(shards)}


def main(device_counts: list[int]) -> dict:
    jax.config.update("jax_enable_x64", True)
    meshes = [sharding.data_mesh(jax.devices()[:n]) for n in device_counts]
    per_method = {name: train(name, meshes) for name in contract_methods()}
    return {str(n): {name: runs[i] for name, runs in per_method.items()}
            for i, n in enumerate(device_counts)}


if __name__ == "__main__":
    print(json.dumps(main([int(n) for n in sys.argv[1:]])))
