"""The attention-based fusion loss of "Where to Look" (Eqs. 14-15) and its weight's schedule.

L_fuse = || V_x / ||V_x||_2 - V_x~ / ||V_x~||_2 ||^2, with V the vectorised CAM (Eq. 13) of the
ground-truth class of each view's classifier; the squared difference is summed over positions (as
in the attention transfer of Zagoruyko & Komodakis that the paper builds on) and averaged over the
batch. Total (method.py): CE(x) + CE(x~) + beta * L_fuse, beta = 50 (Sec. 4.3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
