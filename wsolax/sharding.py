"""Data parallelism with jax.jit over a 1-D device mesh: batch split on 'data', state replicated."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def data_mesh(devices=None) -> Mesh:
    devices = np.asarray(devices if devices is not None else jax.devices())
    return Mesh(devices, ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, mesh: Mesh, key: str) -> None:
    n = mesh.size
    if batch_size % n:
        raise ValueError(f"config key '{key}': batch size {batch_size} is not divisible by the "
                         f"{n} devices it is sharded over")


def put_batch(batch: dict, mesh: Mesh) -> dict:
    """Host numpy batch -> global arrays sharded along the batch axis (works multi-host too)."""
    sharding = batch_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()}


def shard_step(step_fn, mesh: Mesh):
    """jit a `(state, batch, key) -> (state, metrics)` step: batch sharded, the rest replicated."""
    repl, data = replicated(mesh), batch_sharded(mesh)
    return jax.jit(step_fn, in_shardings=(repl, data, repl), out_shardings=(repl, repl),
                   donate_argnums=(0,))


def local_rows(x: jax.Array) -> np.ndarray:
    """The rows of a batch-sharded array that live on this process, in batch order (all rows in a
    single-process run): the rows this process's input pipeline loaded."""
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])
