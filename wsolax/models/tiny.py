"""A tiny CPU-friendly backbone for the embedded dataset and the tests.

A stride-2 stem, two stages with 2x2 max pooling and a last stage without pooling: a 64 px input
gives an 8x8 feature map (stride 8, like the 28->14 maps of the real WSOL backbones scaled down).
The stem is strided because XLA:CPU computes conv weight gradients slowly at high resolution with
few channels (measured: a stride-1 stem with pooling trains ~4x slower at 64 px).
`large_feature_map=True` drops the pool before stage3: stride 4, a 16x16 map at 64 px (as the real
backbones' 28x28 option), to test whether the coarse 8x8 map limits the WSOL methods.
GroupNorm instead of BatchNorm keeps the tiny model independent of batch size; real backbones use
BatchNorm.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.stages import Inserts, check_stages, insert

STAGES = ("stage1", "stage2", "stage3", "stage4")


class ConvGNReLU(nn.Module):
    features: int
    strides: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, (3, 3), strides=self.strides, padding="SAME", use_bias=False,
                    dtype=self.dtype)(x)
        x = nn.GroupNorm(num_groups=min(8, self.features), dtype=self.dtype)(x)
        return nn.relu(x)


class TinyNet(nn.Module):
    """Stages: stage1 (w, /2), stage2 (2w, /4), stage3 (4w, /8), stage4 (8w, /8); /4 for stage3
    and stage4 with large_feature_map."""

    width: int = 16
    inserts: Inserts = ()
    large_feature_map: bool = False
    dtype: jnp.dtype = jnp.float32
    stages = STAGES

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, STAGES, "tiny")
        w = self.width
        x = ConvGNReLU(w, strides=2, dtype=self.dtype)(x)
        x = insert(self, self.inserts, "stage1", x, train)
        # (stage, features, convs, pool first)
        for stage, features, convs, pool in (("stage2", 2 * w, 2, True),
                                             ("stage3", 4 * w, 2, not self.large_feature_map),
                                             ("stage4", 8 * w, 2, False)):
            if pool:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for _ in range(convs):
                x = ConvGNReLU(features, dtype=self.dtype)(x)
            x = insert(self, self.inserts, stage, x, train)
        return x
