"""The attention-based fusion loss of "Where to Look" (Eqs. 14-15) and its weight's schedule.

L_fuse = ( V_x / ||V_x||_2 - V_x~ / ||V_x~||_2 )^2, with V the vectorised CAM (Eq. 13) of the
ground-truth class of each view's classifier. Eq. 14 writes the squared difference of two vectors
and does not say how it is reduced to a number; the paper says the loss is "inspired from [43]",
the attention transfer of Zagoruyko & Komodakis, whose code (szagoruyko/attention-transfer,
`cifar.py` and `imagenet.py`: `at_loss(x, y) = (at(x) - at(y)).pow(2).mean()`, `at` the
l2-normalised flattened map)
takes the **mean over the batch and the positions**. That is the default here
(`reduction="mean"`). `reduction="sum"` sums over the positions and averages over the batch, the
earlier wsolax reading: H*W times the mean (144x on 12x12 maps, 196x on 14x14), so the same beta
weighs that much more. Total (method.py): CE(x) + CE(x~) + beta * L_fuse, beta = 50 (Sec. 4.3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wsolax.precision import widen

NORM_EPS = 1e-12  # a CAM of all zeros stays zero instead of dividing by zero
REDUCTIONS = ("mean", "sum")


def l2_normalize(v: jax.Array) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=-1, keepdims=True))
    return v / jnp.maximum(norm, NORM_EPS)


def fusion_loss(cams_x: jax.Array, cams_x_tilde: jax.Array, reduction: str = "mean") -> jax.Array:
    """Squared difference of the l2-normalised (B, h, w) CAMs, averaged over the batch and the
    positions (`"mean"`) or summed over the positions and averaged over the batch (`"sum"`)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    b = cams_x.shape[0]
    vx = l2_normalize(widen(cams_x.reshape(b, -1)))
    vxt = l2_normalize(widen(cams_x_tilde.reshape(b, -1)))
    squared = jnp.square(vx - vxt)
    return jnp.mean(squared) if reduction == "mean" else jnp.mean(jnp.sum(squared, axis=-1))


def fusion_weight_at(step, fusion_weight: float, start_step: int = 0, warmup_steps: int = 0):
    """beta: 0 before `start_step`, then ramped linearly up to `fusion_weight` over
    `warmup_steps` steps (both 0: the paper's constant beta)."""
    since = jnp.asarray(step, jnp.float32) - start_step
    if warmup_steps <= 0:
        return jnp.where(since >= 0, jnp.float32(fusion_weight), 0.0)
    return fusion_weight * jnp.clip((since + 1) / warmup_steps, 0.0, 1.0)
