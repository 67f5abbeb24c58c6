"""DGDM: dual-attention guided dropblock module (Yin, Zhang, Chang, Ma & Guo).

Two parameter-free parts act on an NHWC feature map F during training; at evaluation DGDM is the
identity (like ADL, which the paper extends).

* CAGD, channel attention guided dropout (Sec. 3.2, Eq. 3): channel attention S = |GAP(F)| per
  image ("magnitude ... each element of S separately under the L1-norm"). The drop threshold is
  beta x min_c S_c ("the prefixed multiple of minimum value of channel attentions"); each channel
  whose attention is strictly below it is zeroed with probability alpha, independently per image
  and channel as in Targeted Dropout, which the section follows. The "top-k" of Eq. 3 is implicit:
  k is the number of channels at or above the threshold. If the smallest attention is 0 (a dead
  channel after ReLU) the threshold is 0 and nothing is dropped: that is the rule as written.
  Dropped channels are not rescaled (the paper mentions no rescaling and evaluation is identity).
* SAGD, spatial attention guided dropblock (Secs. 3.1, 3.3, Eqs. 1, 2, 4): self-attention
  M_self = channel mean of F; importance map M_imp = sigmoid(M_self). Eq. 4 marks a position as a
  drop seed when M_self < delta_l (background) or M_self > delta_h (most discriminative). The paper
  gives no values or scale for delta; it says delta "determines how many activation units to
  discard", its wording for ADL's gamma, which is a fraction of the per-image maximum. We read both
  thresholds the same way: delta_l x max and delta_h x max per image. Then delta_low=0 disables
  background removal for non-negative (post-ReLU) features, and block_size=1, delta_low=0 is ADL's
  drop mask (up to ties: Eq. 4 drops strictly above delta_h, ADL at or above gamma).
  Every seed becomes a block: the paper replaces DropBlock's random gamma-rate seeds by the
  attention-derived ones ("its drop mask M_drop2 is calculated from M_self"; delta, not a keep
  probability, sets how much is dropped), so no seed is sampled. A block of size k covers rows
  i-(k-1)//2 .. i+k//2 around seed row i (centred for odd k; for even k the seed is the top-left of
  the central 2x2), likewise for columns, clipped at the map border (seeds come from attention
  and may lie anywhere, unlike DropBlock's valid-region sampling). The mask is shared by all
  channels (Sec. 3.3). No DropBlock-style renormalisation (ADL has none either).
* Combination (Sec. 3.4, Fig. 2): the drop mask (with probability drop_rate) or the importance map
  is multiplied onto F; "in addition" the CAGD mask is applied, whichever spatial map was chosen.
  Both attentions are computed from the same input F (Eq. 1 and Sec. 3.2 both pool F), so the two
  masks act in parallel and commute: y = F * M_drop1[c] * (M_drop2 or M_imp)[h, w].
  The paper chooses the branch "at each iteration"; per_sample=False (default) draws one choice per
  batch, as ADL does here, per_sample=True one per image.

Defaults (VGG-GAP on CUB, Table 1 and Sec. 4.1): drop_rate 0.75 ("following [3]"), alpha 0.5
(Sec. 3.2), beta 3 (Table 1 lower), block_size 3 (Table 1 middle, which the beta rows build on:
their beta=3 row is the 54.34 Top-1 Loc of Table 3). delta_h 0.8 is ADL's VGG gamma (the paper
follows ADL's settings; ADL uses 0.9 for ResNet). delta_l is not
given anywhere; 0.05 is our choice, in the range of the background thresholds (0.01-0.1 of the
normalised attention map) used for SPG, the paper's [31], whose delta_l/delta_h notation it borrows.
Table 1 component ablations: "M_drop2_stage1" = delta_low=0, alpha=0; "+M_drop2_stage2" =
delta_low>0, alpha=0; "+M_drop1" = alpha>0. "Adap_7" (block_size = [H/7]) = block_divisor=7,
read as floor(H/7) (at least 1), per map axis.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.methods.api import layer_method
from wsolax.precision import widen


def channel_attention(x: jax.Array) -> jax.Array:
    """|GAP(x)| per image and channel, float32, shape (B, C)."""
    return jnp.abs(jnp.mean(widen(x), axis=(1, 2)))


def cagd_mask(key: jax.Array, attention: jax.Array, *, alpha: float, beta: float) -> jax.Array:
    """CAGD keep mask M_drop1 (B, C): 0 with probability alpha where attention < beta x min."""
    threshold = beta * jnp.min(attention, axis=-1, keepdims=True)
    drop = (attention < threshold) & (jax.random.uniform(key, attention.shape) < alpha)
    return jnp.where(drop, 0.0, 1.0).astype(jnp.float32)


def resolve_block_size(height: int, width: int, block_size: int, block_divisor: int = 0
                       ) -> tuple[int, int]:
    """Static (bh, bw): block_size, or floor(H/d), floor(W/d) (>= 1) when block_divisor d > 0."""
    if block_divisor > 0:
        return max(1, height // block_divisor), max(1, width // block_divisor)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return block_size, block_size


def dropblock_mask(seeds: jax.Array, block_size: int | Sequence[int]) -> jax.Array:
    """Keep mask (B, H, W): 0 inside the block around every True seed of `seeds` (B, H, W)."""
    bh, bw = (block_size, block_size) if isinstance(block_size, int) else tuple(block_size)
    # A max over a window reaching k//2 back and (k-1)//2 forward puts seed i into outputs
    # i-(k-1)//2 .. i+k//2; padding with 0 (no seed) clips the blocks at the border.
    covered = jax.lax.reduce_window(
        seeds.astype(jnp.float32), jnp.float32(0), jax.lax.max, (1, bh, bw), (1, 1, 1),
        ((0, 0), (bh // 2, (bh - 1) // 2), (bw // 2, (bw - 1) // 2)))
    return 1.0 - covered


def sagd_drop_mask(attention: jax.Array, *, delta_low: float, delta_high: float,
                   block_size: int | Sequence[int]) -> jax.Array:
    """SAGD drop mask M_drop2 (B, H, W) from self-attention (B, H, W), Eq. 4 plus blocks."""
    peak = jnp.max(attention, axis=(1, 2), keepdims=True)
    seeds = (attention < delta_low * peak) | (attention > delta_high * peak)
    return dropblock_mask(seeds, block_size)


def dgdm(key: jax.Array | None, x: jax.Array, *, drop_rate: float = 0.75, block_size: int = 3,
         block_divisor: int = 0, delta_low: float = 0.05, delta_high: float = 0.8,
         alpha: float = 0.5, beta: float = 3.0, train: bool = True,
         per_sample: bool = False) -> jax.Array:
    """Apply DGDM to an NHWC feature map; returns an array of x's shape and dtype."""
    if not train:
        return x
    branch_key, channel_key = jax.random.split(key)
    xf = widen(x)
    self_attention = jnp.mean(xf, axis=-1)  # (B, H, W)
    block = resolve_block_size(x.shape[1], x.shape[2], block_size, block_divisor)
    drop_mask = sagd_drop_mask(self_attention, delta_low=delta_low, delta_high=delta_high,
                               block_size=block)
    importance = jax.nn.sigmoid(self_attention)
    shape = (x.shape[0], 1, 1) if per_sample else ()
    use_drop = jax.random.uniform(branch_key, shape) < drop_rate
    spatial = jnp.where(use_drop, drop_mask, importance)[..., None]  # (B, H, W, 1)
    channel = cagd_mask(channel_key, channel_attention(x), alpha=alpha, beta=beta)[:, None, None, :]
    return (xf * spatial * channel).astype(x.dtype)


class DGDM(nn.Module):
    """Thin module: holds the hyperparameters and draws its key from the 'dropout' stream."""

    drop_rate: float = 0.75
    block_size: int = 3
    block_divisor: int = 0  # > 0: Table 1's adaptive block, floor(H / block_divisor)
    delta_low: float = 0.05
    delta_high: float = 0.8
    alpha: float = 0.5
    beta: float = 3.0
    per_sample: bool = False
    dtype: jnp.dtype = jnp.float32  # for the inserted-layer interface; output keeps x's dtype

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if not train:
            return x
        return dgdm(self.make_rng("dropout"), x, drop_rate=self.drop_rate,
                    block_size=self.block_size, block_divisor=self.block_divisor,
                    delta_low=self.delta_low, delta_high=self.delta_high, alpha=self.alpha,
                    beta=self.beta, train=True, per_sample=self.per_sample)


# Selected by `config.model.inserts`; hyperparameters: the fields of DGDM (model.methods.dgdm).
METHOD = layer_method("dgdm", DGDM)
