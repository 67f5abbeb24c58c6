"""Train every registered method two float64 steps on fixed data, sharded over N devices, and
print per method the losses, a parameter checksum and the shardings as one JSON line.

Launched by tests/test_method_contract.py in a subprocess, because the device count (XLA_FLAGS)
must be set before JAX starts; one process runs all the methods, so the suite starts JAX twice
(1 and 8 devices), not twice per method.
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


def train(name: str, mesh) -> dict:
    cfg = tiny_method_config(name, "float64")
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    init = jax.jit(lambda k: init_state(model, tx, k, (1, IMAGE, IMAGE, 3)),
                   out_shardings=sharding.replicated(mesh))
    state = init(init_key(0))
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


def main(num_devices: int) -> dict:
    jax.config.update("jax_enable_x64", True)
    mesh = sharding.data_mesh(jax.devices()[:num_devices])
    return {name: train(name, mesh) for name in contract_methods()}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
