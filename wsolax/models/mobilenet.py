"""MobileNetV1 (width 1.0) for WSOL, as in the ADL paper (Choe & Shim, CVPR'19; ADL gamma 0.95).

Source layout: timm's `mobilenetv1_100` (e.g. `model.safetensors` of the Hugging Face hub repo
`timm/mobilenetv1_100.*`), there being no torchvision MobileNetV1. Its tensors:

  conv_stem.weight (32, 3, 3, 3), bn1.*                stem: 3x3/2 conv, BN, ReLU6
  blocks.<s>.<j>.conv_dw.weight (C, 1, 3, 3), .bn1.*   depthwise 3x3 (stride 1 or 2), BN, ReLU6
  blocks.<s>.<j>.conv_pw.weight (C', C, 1, 1), .bn2.*  pointwise 1x1, BN, ReLU6
  classifier.weight (1000, 1024), classifier.bias      after global average pooling

Convs are bias-free with symmetric padding 1 (timm's default `pad_type=''`), BatchNorm eps 1e-5,
activation ReLU6 (timm's default for this model), no residual connections (timm's 'dsa' blocks
are `noskip`). The 13 depthwise-separable blocks are grouped by timm into stages
s = 0..4 of 1, 2, 2, 6, 2 blocks; here they are numbered flat, ``block0`` ... ``block12``:

  block  0      1    2     3    4     5    6-10   11    12
  timm   0.0    1.0  1.1   2.0  2.1   3.0  3.1-5  4.0   4.1
  out    64     128  128   256  256   512  512    1024  1024
  stride 1      2    1     2    1     2    1      2->1  1

WSOL change: the stride of block11 (blocks.4.0, the last stride-2 block) is removed, so a 224 px
input gives 14x14x1024 features (stride 16) instead of 7x7. With ``model.large_feature_map=True``
the stride of block5 (blocks.3.0) is removed as well: 28x28x1024 (stride 8), the analogue of VGG
without pool4. There are no new layers before the GAP; the timm classifier (1024 -> 1000) maps onto
the shared head's `classifier` (loaded when the class count is 1000, otherwise left fresh and
reported as skipped).

Named stages (``model.inserts``): ``stem``, ``block0`` ... ``block12`` (after each block's
pointwise ReLU6) and ``last`` (the backbone output: after block12 and any layers inserted there).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.layers import ConvBN
from wsolax.models.stages import Inserts, check_stages, insert

# (output channels, stride, timm stage, index in stage) of the 13 blocks
_BLOCKS = ((64, 1, 0, 0), (128, 2, 1, 0), (128, 1, 1, 1), (256, 2, 2, 0), (256, 1, 2, 1),
           (512, 2, 3, 0), *((512, 1, 3, j) for j in range(1, 6)), (1024, 2, 4, 0),
           (1024, 1, 4, 1))
LAST_STRIDE_BLOCK = 11  # stride removed (WSOL)
LARGE_MAP_BLOCK = 5  # stride also removed with large_feature_map
STAGES = ("stem",) + tuple(f"block{i}" for i in range(len(_BLOCKS))) + ("last",)


def _torch_table() -> dict[tuple[str, ...], str]:
    """Flax module path below `backbone` -> timm module prefix."""
    table = {("stem", "conv"): "conv_stem", ("stem", "bn"): "bn1"}
    for i, (_, _, s, j) in enumerate(_BLOCKS):
        for flax_name, torch_suffix in ((("dw", "conv"), "conv_dw"), (("dw", "bn"), "bn1"),
                                        (("pw", "conv"), "conv_pw"), (("pw", "bn"), "bn2")):
            table[(f"block{i}", *flax_name)] = f"blocks.{s}.{j}.{torch_suffix}"
    return table


_TORCH = _torch_table()


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv, BN, ReLU6, 1x1 pointwise conv, BN, ReLU6 (submodules `dw`, `pw`)."""

    features: int
    strides: int = 1
    bn_frozen: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        channels = x.shape[-1]
        x = ConvBN(channels, 3, strides=self.strides, padding=1, groups=channels, relu=False,
                   bn_frozen=self.bn_frozen, dtype=self.dtype, name="dw")(x, train=train)
        x = nn.relu6(x)
        x = ConvBN(self.features, 1, relu=False, bn_frozen=self.bn_frozen, dtype=self.dtype,
                   name="pw")(x, train=train)
        return nn.relu6(x)


class MobileNetV1WSOL(nn.Module):
    large_feature_map: bool = False
    bn_frozen: bool = False
    inserts: Inserts = ()
    dtype: jnp.dtype = jnp.float32
    stages = STAGES

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, STAGES, "mobilenet_v1")
        x = ConvBN(32, 3, strides=2, padding=1, relu=False, bn_frozen=self.bn_frozen,
                   dtype=self.dtype, name="stem")(x, train=train)
        x = insert(self, self.inserts, "stem", nn.relu6(x), train)
        for i, (features, strides, _, _) in enumerate(_BLOCKS):
            if i == LAST_STRIDE_BLOCK or (i == LARGE_MAP_BLOCK and self.large_feature_map):
                strides = 1
            x = DepthwiseSeparable(features, strides, bn_frozen=self.bn_frozen, dtype=self.dtype,
                                   name=f"block{i}")(x, train=train)
            x = insert(self, self.inserts, f"block{i}", x, train)
        return insert(self, self.inserts, "last", x, train)


def build_backbone(name: str, model_cfg, inserts: Inserts, dtype) -> nn.Module:
    if name != "mobilenet_v1":
        raise ValueError(f"wsolax.models.mobilenet builds 'mobilenet_v1', not '{name}'")
    return MobileNetV1WSOL(large_feature_map=bool(model_cfg.large_feature_map),
                           bn_frozen=bool(model_cfg.bn_frozen), inserts=inserts, dtype=dtype)


def torch_name(path: tuple[str, ...]) -> str | None:
    """Flax module path -> timm mobilenetv1_100 module prefix (None for inserted layers)."""
    if tuple(path) == ("head", "classifier"):
        return "classifier"
    if len(path) >= 2 and path[0] == "backbone":
        return _TORCH.get(tuple(path[1:]))
    return None
