"""The attention-based fusion loss and the training objective of "Where to Look" (Eqs. 14-15).

L_fuse = || V_x / ||V_x||_2 - V_x~ / ||V_x~||_2 ||^2, with V the vectorised CAM (Eq. 13) of the
ground-truth class of each view's classifier; the squared difference is summed over positions (as
in the attention transfer of Zagoruyko & Komodakis that the paper builds on) and averaged over the
batch. Total: CE(x) + CE(x~) + beta * L_fuse, beta = 50 (Sec. 4.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from wsolax.methods.where_to_look.pair import complementary_pair
from wsolax.precision import widen

NORM_EPS = 1e-12  # a CAM of all zeros stays zero instead of dividing by zero


def l2_normalize(v: jax.Array) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=-1, keepdims=True))
    return v / jnp.maximum(norm, NORM_EPS)


def fusion_loss(cams_x: jax.Array, cams_x_tilde: jax.Array) -> jax.Array:
    """Mean over the batch of the squared distance of the l2-normalised (B, h, w) CAMs."""
    b = cams_x.shape[0]
    vx = l2_normalize(widen(cams_x.reshape(b, -1)))
    vxt = l2_normalize(widen(cams_x_tilde.reshape(b, -1)))
    return jnp.mean(jnp.sum(jnp.square(vx - vxt), axis=-1))


def fusion_weight_at(step, fusion_weight: float, start_step: int = 0, warmup_steps: int = 0):
    """beta: 0 before `start_step`, then ramped linearly up to `fusion_weight` over
    `warmup_steps` steps (both 0: the paper's constant beta)."""
    since = jnp.asarray(step, jnp.float32) - start_step
    if warmup_steps <= 0:
        return jnp.where(since >= 0, jnp.float32(fusion_weight), 0.0)
    return fusion_weight * jnp.clip((since + 1) / warmup_steps, 0.0, 1.0)


def make_objective(*, patch_sizes: Sequence[int], hide_prob: float = 0.5, fill: float = 0.0,
                   fusion_weight: float = 50.0, fusion_start_step: int = 0,
                   fusion_warmup_steps: int = 0):
    """`objective(model, variables, batch, key, step) -> (loss, (aux, updates))` for the train step.

    The pair is made inside the jitted step from `key`; the layers inserted in the backbone (if
    any) draw from an independent key. `fusion_start_step` / `fusion_warmup_steps` delay beta and
    ramp it up (not in the paper, which starts from ImageNet weights: from scratch the fusion loss
    otherwise wins before the classifiers learn anything, see configs/synthetic_wtl.py).
    """
    patch_sizes = tuple(int(p) for p in patch_sizes)

    def objective(model, variables, batch, key, step=0):
        pair_key, dropout_key = jax.random.split(key)
        labels = batch["label"]
        x, x_tilde, _ = complementary_pair(pair_key, batch["image"], patch_sizes=patch_sizes,
                                           hide_prob=hide_prob, fill=fill)
        out, updates = model.apply(variables, x, x_tilde, train=True, cam_classes=labels[:, None],
                                   method="pair", rngs={"dropout": dropout_key},
                                   mutable=["batch_stats"])
        ce_x = optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
        ce_x_tilde = optax.softmax_cross_entropy_with_integer_labels(
            out["logits_tilde"], labels).mean()
        fuse = fusion_loss(out["cams"][..., 0], out["cams_tilde"][..., 0])
        beta = fusion_weight_at(step, fusion_weight, fusion_start_step, fusion_warmup_steps)
        loss = ce_x + ce_x_tilde + beta * fuse
        metrics = {"loss_ce_x": ce_x, "loss_ce_x_tilde": ce_x_tilde, "loss_fusion": fuse,
                   "fusion_weight": beta,
                   "accuracy_x_tilde": jnp.mean(jnp.argmax(out["logits_tilde"], -1) == labels)}
        return loss, ({"logits": out["logits"], "metrics": metrics}, updates)

    return objective
