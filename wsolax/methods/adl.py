"""ADL: attention-based dropout layer (Choe & Shim, CVPR 2019).

Self-attention = channel mean of the feature map. Drop mask: 1 where the attention is below
gamma x its per-sample maximum, 0 on the most discriminative region (positions at or above the
threshold are dropped: the paper only says "0 if larger, 1 if smaller"; we follow the issue's
"keeps positions below" and the reference code's strict `<`). Importance map: sigmoid(attention).
During training one of the two is chosen at random -- the drop mask with probability `drop_rate`
-- and multiplied onto the input; at evaluation ADL is the identity. The paper says the choice is
made "for each iteration"; `per_sample=False` (default) draws one choice per batch as the reference
implementations do, `per_sample=True` one per image.

gamma per backbone (paper Sec. 4): VGG-GAP and InceptionV3 0.8, ResNet50 / SE-ResNet 0.9,
MobileNetV1 0.95; drop rate 0.75.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.methods.api import layer_method
from wsolax.precision import widen


def adl(key: jax.Array | None, x: jax.Array, *, drop_rate: float = 0.75, gamma: float = 0.9,
        train: bool = True, per_sample: bool = False) -> jax.Array:
    """Apply ADL to an NHWC feature map; returns an array of x's shape and dtype."""
    if not train:
        return x
    attention = jnp.mean(widen(x), axis=-1, keepdims=True)  # (B, H, W, 1)
    threshold = gamma * jnp.max(attention, axis=(1, 2), keepdims=True)
    drop_mask = (attention < threshold).astype(attention.dtype)
    importance = jax.nn.sigmoid(attention)
    shape = (x.shape[0], 1, 1, 1) if per_sample else ()
    use_drop = jax.random.uniform(key, shape) < drop_rate
    return (x * jnp.where(use_drop, drop_mask, importance)).astype(x.dtype)


class ADL(nn.Module):
    """Thin module: holds the hyperparameters and draws its key from the 'dropout' stream."""

    drop_rate: float = 0.75
    gamma: float = 0.9
    per_sample: bool = False
    dtype: jnp.dtype = jnp.float32  # accepted for the inserted-layer interface; output keeps x's dtype

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if not train:
            return x
        return adl(self.make_rng("dropout"), x, drop_rate=self.drop_rate, gamma=self.gamma,
                   train=True, per_sample=self.per_sample)


# Selected by `config.model.inserts`; hyperparameters: the fields of ADL (model.methods.adl).
METHOD = layer_method("adl", ADL)
