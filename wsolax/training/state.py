"""Training state: everything a checkpoint must hold to continue bit-for-bit."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from wsolax.models.wsol_model import init_variables


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any  # {} for models without BatchNorm
    opt_state: optax.OptState


def init_state(model, tx: optax.GradientTransformation, key: jax.Array, image_shape) -> TrainState:
    return initial_state(init_variables(model, key, image_shape), tx)


def initial_state(variables: dict, tx: optax.GradientTransformation) -> TrainState:
    """Step 0 from given variables ({"params"[, "batch_stats"]}): a fresh optimizer state."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(variables["params"]))


def model_variables(state: TrainState) -> dict:
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    return variables
