"""Building blocks shared by the ImageNet backbones (torchvision conventions).

Padding is explicit (torch's symmetric `padding=p`), never "SAME": with stride 2, XLA's SAME pads
asymmetrically and the feature maps would no longer match the PyTorch weights they are loaded from.
BatchNorm follows torch.nn.BatchNorm2d (momentum 0.1, eps 1e-5, biased batch variance to
normalise, unbiased one in the running estimate); `bn_frozen=True` always uses the running
statistics (fine-tuning with frozen BN).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.conv import resolve
from wsolax.precision import widen


def pad(p: int | tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """torch's symmetric conv/pool padding as a Flax padding spec."""
    ph, pw = (p, p) if isinstance(p, int) else p
    return ((ph, ph), (pw, pw))


class BatchNorm(nn.Module):
    """torch.nn.BatchNorm2d semantics in Flax's variable layout (params scale/bias, batch_stats
    mean/var), so converted running statistics keep their meaning while fine-tuning.

    Differences from `flax.linen.BatchNorm` that matter for parity with a PyTorch run: the running
    variance is updated with the *unbiased* batch variance (torch), the batch variance is the
    two-pass E[(x - mean)^2] (no E[x^2] - E[x]^2 cancellation), and statistics are accumulated in
    float32 even when the compute dtype is bfloat16. Under `jax.jit` with a batch-sharded input the
    batch statistics are global (like SyncBatchNorm), not per device.
    """

    use_running_average: bool = False
    momentum: float = 0.1  # torch's convention: new = (1 - momentum) * old + momentum * batch
    epsilon: float = 1e-5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        running_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        running_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        if self.use_running_average:
            mean, var = running_mean.value, running_var.value
        else:
            x32 = widen(x)
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x32, axis=axes)
            var = jnp.mean(jnp.square(x32 - mean), axis=axes)
            if not self.is_initializing():
                n = x.size // c
                m = self.momentum
                running_mean.value = (1 - m) * running_mean.value + m * mean
                running_var.value = (1 - m) * running_var.value + m * var * (n / max(n - 1, 1))
        inv = jax.lax.rsqrt(var + self.epsilon) * scale
        y = widen(x) * inv + (bias - mean * inv)
        return y.astype(self.dtype)


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> optional ReLU; parameters live under `conv` and `bn`.

    `conv_1x1` says how a 1x1 convolution is computed (wsolax.models.conv.resolve): "auto" (as a
    matrix product on CPU, where XLA's 1x1 filter gradient is slow, XLA's convolution elsewhere),
    "conv" (always XLA's convolution) or "dot" (always a matrix product). The same numbers up to
    float32 rounding either way, and the same parameters (`conv/kernel`, HWIO).
    """

    features: int
    kernel: int | tuple[int, int] = 3
    strides: int = 1
    padding: int | tuple[int, int] = 0
    groups: int = 1
    relu: bool = True
    bn_frozen: bool = False
    bn_epsilon: float = 1e-5
    dtype: jnp.dtype = jnp.float32
    conv_1x1: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        k = (self.kernel, self.kernel) if isinstance(self.kernel, int) else tuple(self.kernel)
        x = nn.Conv(self.features, k, strides=self.strides, padding=pad(self.padding),
                    feature_group_count=self.groups, use_bias=False, dtype=self.dtype,
                    conv_general_dilated=resolve(self.conv_1x1), name="conv")(x)
        x = BatchNorm(use_running_average=not train or self.bn_frozen, epsilon=self.bn_epsilon,
                      dtype=self.dtype, name="bn")(x)
        return nn.relu(x) if self.relu else x


def max_pool(x: jax.Array, kernel: int, stride: int, padding: int = 0,
             ceil_mode: bool = False) -> jax.Array:
    """torch.nn.functional.max_pool2d (padding counts as -inf; ceil_mode pads the far side)."""
    pads = [(padding, padding), (padding, padding)]
    if ceil_mode:
        for axis in (0, 1):
            size = x.shape[1 + axis] + 2 * padding
            out = -(-(size - kernel) // stride) + 1
            # torch drops a last window that would start in the right padding
            if (out - 1) * stride >= x.shape[1 + axis] + padding:
                out -= 1
            extra = max(0, (out - 1) * stride + kernel - size)
            pads[axis] = (padding, padding + extra)
    return nn.max_pool(x, (kernel, kernel), strides=(stride, stride), padding=tuple(pads))


def avg_pool(x: jax.Array, kernel: int, stride: int, padding: int = 0) -> jax.Array:
    """torch.nn.functional.avg_pool2d with count_include_pad=True (torch's default)."""
    return nn.avg_pool(x, (kernel, kernel), strides=(stride, stride), padding=pad(padding),
                       count_include_pad=True)
