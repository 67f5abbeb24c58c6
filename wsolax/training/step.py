"""The jitted train step. Randomness: one run key, folded with the step number inside the step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from wsolax.training.state import TrainState, model_variables


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_train_step(model, tx: optax.GradientTransformation, loss_fn=classification_loss):
    """Returns `step(state, batch, run_key) -> (state, metrics)`; jit/shard it with `shard_step`."""

    def train_step(state: TrainState, batch: dict, run_key: jax.Array):
        key = jax.random.fold_in(run_key, state.step)

        def objective(params):
            variables = model_variables(state.replace(params=params))
            out, updates = model.apply(variables, batch["image"], train=True,
                                       rngs={"dropout": key}, mutable=["batch_stats"])
            return loss_fn(out["logits"], batch["label"]), (out["logits"], updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, param_updates),
            batch_stats=updates.get("batch_stats", state.batch_stats),
            opt_state=opt_state,
        )
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
            "grad_norm": optax.tree.norm(grads),
        }
        return new_state, metrics

    return train_step
