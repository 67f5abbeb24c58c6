"""The jitted train step. Randomness: one run key, folded with the step number inside the step.

What the step minimises is an *objective*: `objective(model, variables, batch, key, step) ->
(loss, (aux, updates))` (step: the optimizer step being taken, for loss weights on a schedule),
where aux holds the logits the accuracy is measured on and optionally a dict of extra scalar
`metrics`, and updates the new mutable collections (BatchNorm statistics).
Plain classification (CAM and the inserted attention-dropout layers) is the default; methods with
transforms, a training forward or loss terms compose theirs (wsolax.training.objectives).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from wsolax.training.state import TrainState, model_variables


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy; labels are class indices (B,) or, after a label-mixing transform
    (CutMix), class distributions (B, K)."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return optax.softmax_cross_entropy(logits, labels).mean()


def classification_objective(model, variables, batch, key, step=None):
    del step
    out, updates = model.apply(variables, batch["image"], train=True, rngs={"dropout": key},
                               mutable=["batch_stats"])
    return classification_loss(out["logits"], batch["label"]), ({"logits": out["logits"]}, updates)


def make_train_step(model, tx: optax.GradientTransformation, objective=classification_objective):
    """Returns `step(state, batch, run_key) -> (state, metrics)`; jit/shard it with `shard_step`."""

    def train_step(state: TrainState, batch: dict, run_key: jax.Array):
        key = jax.random.fold_in(run_key, state.step)

        def loss_of(params):
            return objective(model, model_variables(state.replace(params=params)), batch, key,
                             state.step)

        (loss, (aux, updates)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, param_updates),
            batch_stats=updates.get("batch_stats", state.batch_stats),
            opt_state=opt_state,
        )
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(aux["logits"], -1) == batch["label"]),
            "grad_norm": optax.tree.norm(grads),
            **aux.get("metrics", {}),
        }
        return new_state, metrics

    return train_step
