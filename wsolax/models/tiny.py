"""A tiny CPU-friendly backbone for the embedded dataset and the tests.

Three conv stages with 2x2 max pooling and a last stage without pooling, so a 64 px input gives an
8x8 feature map (stride 8, like the 28->14 maps of the real WSOL backbones scaled down). GroupNorm
instead of BatchNorm keeps the tiny model independent of batch size; real backbones use BatchNorm.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.stages import Inserts, check_stages, insert

STAGES = ("stage1", "stage2", "stage3", "stage4")


class ConvGNReLU(nn.Module):
    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(x)
        x = nn.GroupNorm(num_groups=min(8, self.features), dtype=self.dtype)(x)
        return nn.relu(x)


class TinyNet(nn.Module):
    """Stages: stage1 (w, /2), stage2 (2w, /4), stage3 (4w, /8), stage4 (8w, /8)."""

    width: int = 16
    inserts: Inserts = ()
    dtype: jnp.dtype = jnp.float32
    stages = STAGES

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, STAGES, "tiny")
        w = self.width
        plan = ((w, 1, True), (2 * w, 2, True), (4 * w, 2, True), (8 * w, 2, False))
        for stage, (features, convs, pool) in zip(STAGES, plan):
            for _ in range(convs):
                x = ConvGNReLU(features, dtype=self.dtype)(x)
            if pool:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = insert(self, self.inserts, stage, x, train)
        return x
