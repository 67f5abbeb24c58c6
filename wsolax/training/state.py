"""Training state: everything a checkpoint must hold to continue bit-for-bit."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from wsolax.precision import param_dtype


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any  # {} for models without BatchNorm
    opt_state: optax.OptState


def init_key(seed: int) -> jax.Array:
    """Key for parameter initialisation.

    RngBitGenerator ('rbg') keys compile ~8x faster than the default partitionable threefry on
    XLA:CPU (measured: 2.5 s vs 21 s for the tiny model's init); training randomness keeps the
    default implementation, whose values do not depend on how the batch is sharded.
    """
    return jax.random.key(seed, impl="rbg")


def init_state(model, tx: optax.GradientTransformation, key: jax.Array, image_shape) -> TrainState:
    variables = model.init({"params": key, "dropout": key}, jnp.zeros(image_shape, jnp.float32),
                           train=False)
    # A float64 model holds float64 parameters and statistics (modules create float32 ones).
    dtype = param_dtype(getattr(model.backbone, "dtype", jnp.float32))
    params, batch_stats = jax.tree.map(
        lambda v: v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v,
        (variables["params"], variables.get("batch_stats", {})))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                      opt_state=tx.init(params))


def model_variables(state: TrainState) -> dict:
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    return variables
