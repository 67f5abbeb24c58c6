"""DFM: dual-attention focused module (Zhou, Chen, Shen, Liu, Zhao & Liang, "Dual-attention Focused
Module for Weakly Supervised Object Localization").

For an NHWC feature map F (one image: c x h x w in the paper's notation):

* channel branch (Eqs. 1, 3, 5): C_A = GAP(F) (one value per channel), C_E = tanh(C_A),
  C_M = 1 where C_A < alpha * max_c C_A, else 0;
* position branch (Eqs. 2, 4, 6): P_A = channel mean of F (one value per position), P_E = tanh(P_A),
  P'_M = 1 where P_A < beta * max_hw P_A, else 0;
* neighbour-focused matrix (Eqs. 7-8): P_M = P'_M + Delta_M, Delta_M = omega * P'_M on the 3x3
  neighbourhood of every masked position (P'_M == 0) -- kept positions that touch the erased region
  go from 1 to 1 + omega, everything else is unchanged;
* cross fusion (Eqs. 9-14): C_ME = delta * P_E + C_M and P_ME = gamma * C_E + P_M, the spatial maps
  (h x w) repeated over channels and the channel vectors (c) over positions (Eqs. 9-12), so each
  sum is an outer sum of shape (h, w, c);
* output (Eqs. 15-16): F_Module = F * M with M = P_ME with probability tau, else C_ME;
  F_out = F + F_Module, i.e. F * (1 + M); at evaluation F + F (see test time below).

Readings of the paper where it is not explicit:

* Masks keep what lies strictly below the threshold: Eqs. 5-6 set 0 where the attention is >= the
  threshold (the most discriminative channels/positions are the ones hidden).
* Maxima are per image (and per branch): the equations are written for one c x h x w map.
* Delta_M (Eq. 7) is read as omega times the *mask* value at each neighbour, applied once per
  neighbour however many masked positions it touches: the text says the matrix "strengthens the
  weights surrounding the mask regions" "to certain multiples" and Eq. 7 writes one set of
  neighbours per mask region, not a sum. So Delta_M = omega * P'_M * dilate3x3(1 - P'_M): masked
  positions stay 0, their kept neighbours become 1 + omega, positions beyond the image border do
  not exist (no wrap-around, no padding contribution). It is not a 3x3 convolution of the mask
  (that would raise every kept position, not only those surrounding the erased region), and it
  does not use the attention values (the paper calls it a tool "to rationalize the PMM P'_M").
* F_Module is the input weighted by the selected map, not the map itself: the maps are "fed back
  to the input feature maps" (like ADL's maps, which DFM says it inherits), and only a product can
  "delete the selected regions' information" that Sec. "Information Fusion" says the masks delete.
  Eq. 16 then adds the input back (the (1 + M) * F form of residual attention).
* tau is the probability of choosing P_ME ("there is 70% probability to choose P_ME").
* Nothing is learned ("no extra trainable parameters"); gradients flow through the tanh
  enhancement maps and the input, not through the (piecewise-constant) masks.
* Test time (`eval_output`): the paper does not describe it. Eq. 16's residual is part of the
  network, and the module's branch is switched off the way ADL, which DFM plugs in like, is at
  test: it passes its input unchanged (F_Module = F_in), so F_out = F_in + F_in = 2 F_in
  (`eval_output="residual"`, default). Training outputs F (1 + M) with M about 1 on most cells
  (C_M = 1 and P_M >= 1 off the masked ones, plus the enhancement terms), so the layers after DFM
  -- BatchNorm statistics and the CAM head included -- see features on the same scale at test as
  in training. `eval_output="identity"` returns F_in itself, the earlier wsolax reading, at about
  half the training scale.
* The random choice is one per forward pass, shared by the batch, by default (`per_sample=False`):
  Eq. 15 writes one random() per module output, and DFM plugs in like ADL, whose authors' code
  (junsukchoe/ADL `ops.py`: `tf.random_uniform([], ...)`) and the CVPR'20 benchmark's
  (`wsol/method/adl.py`: `torch.rand([])`) draw one scalar per forward; `per_sample=True` draws
  one per image.

Defaults are the paper's ResNet50 settings (Sec. "Implementation"): alpha 0.85, beta 0.95,
omega 0.15, delta 0.6, gamma 0.4, tau 0.7; the paper inserts DFM after conv4_1 and conv5_3.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.methods.api import layer_method
from wsolax.precision import widen


def channel_branch(x: jax.Array, *, alpha: float) -> tuple[jax.Array, jax.Array]:
    """(C_E, C_M), each (B, 1, 1, C) float32: tanh of the GAP attention and its threshold mask."""
    attention = jnp.mean(widen(x), axis=(1, 2), keepdims=True)
    threshold = alpha * jnp.max(attention, axis=-1, keepdims=True)
    return jnp.tanh(attention), (attention < threshold).astype(attention.dtype)


def neighbour_focus(mask: jax.Array, *, omega: float) -> jax.Array:
    """P_M = P'_M + omega * P'_M on the 3x3 neighbours of masked positions; mask is (B, H, W, 1)."""
    erased = 1.0 - mask
    h, w = mask.shape[1:3]
    # Zero padding: a position outside the map is never "erased", so borders get no spreading
    # from beyond the edge and nothing wraps around.
    padded = jnp.pad(erased, ((0, 0), (1, 1), (1, 1), (0, 0)))
    near_erased = functools.reduce(
        jnp.maximum, (padded[:, di:di + h, dj:dj + w] for di in range(3) for dj in range(3)))
    return mask + omega * mask * near_erased


def position_branch(x: jax.Array, *, beta: float, omega: float) -> tuple[jax.Array, jax.Array]:
    """(P_E, P_M), each (B, H, W, 1) float32: tanh of the channel-mean attention and the
    neighbour-focused threshold mask."""
    attention = jnp.mean(widen(x), axis=-1, keepdims=True)
    threshold = beta * jnp.max(attention, axis=(1, 2), keepdims=True)
    mask = (attention < threshold).astype(attention.dtype)
    return jnp.tanh(attention), neighbour_focus(mask, omega=omega)


def fusion_maps(x: jax.Array, *, alpha: float = 0.85, beta: float = 0.95, omega: float = 0.15,
                delta: float = 0.6, gamma: float = 0.4) -> tuple[jax.Array, jax.Array]:
    """(C_ME, P_ME), each (B, H, W, C) float32 (Eqs. 13-14)."""
    c_e, c_m = channel_branch(x, alpha=alpha)
    p_e, p_m = position_branch(x, beta=beta, omega=omega)
    return delta * p_e + c_m, gamma * c_e + p_m


EVAL_OUTPUTS = ("residual", "identity")


def dfm(key: jax.Array | None, x: jax.Array, *, alpha: float = 0.85, beta: float = 0.95,
        omega: float = 0.15, delta: float = 0.6, gamma: float = 0.4, tau: float = 0.7,
        train: bool = True, per_sample: bool = False, eval_output: str = "residual") -> jax.Array:
    """Apply DFM to an NHWC feature map; returns an array of x's shape and dtype. At evaluation
    (no key needed): x + x with `eval_output="residual"`, x itself with "identity"."""
    if eval_output not in EVAL_OUTPUTS:
        raise ValueError(f"eval_output must be one of {EVAL_OUTPUTS}, got {eval_output!r}")
    if not train:
        return x + x if eval_output == "residual" else x
    c_me, p_me = fusion_maps(x, alpha=alpha, beta=beta, omega=omega, delta=delta, gamma=gamma)
    shape = (x.shape[0], 1, 1, 1) if per_sample else ()
    use_position = jax.random.uniform(key, shape) < tau
    x32 = widen(x)
    return (x32 + x32 * jnp.where(use_position, p_me, c_me)).astype(x.dtype)


class DFM(nn.Module):
    """Thin module: holds the hyperparameters and draws its key from the 'dropout' stream."""

    alpha: float = 0.85
    beta: float = 0.95
    omega: float = 0.15
    delta: float = 0.6
    gamma: float = 0.4
    tau: float = 0.7
    per_sample: bool = False
    eval_output: str = "residual"  # test: F + F (Eq. 16, the branch passing its input); "identity"
    dtype: jnp.dtype = jnp.float32  # for the inserted-layer interface; output keeps x's dtype

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if not train:
            return dfm(None, x, train=False, eval_output=self.eval_output)
        return dfm(self.make_rng("dropout"), x, alpha=self.alpha, beta=self.beta,
                   omega=self.omega, delta=self.delta, gamma=self.gamma, tau=self.tau,
                   train=True, per_sample=self.per_sample, eval_output=self.eval_output)


# Selected by `config.model.inserts`; hyperparameters: the fields of DFM (model.methods.dfm).
METHOD = layer_method("dfm", DFM, eval_readings=("eval_output",))
