"""ResNet18/34/50/101 and SE-ResNet50 backbones, WSOL variants (Choe et al. CVPR'20, ADL).

Layout and names follow torchvision's ResNet (and timm's `seresnet50`, which is torchvision's
ResNet50 plus a squeeze-excitation module `layerX.Y.se.{fc1,fc2}` per bottleneck), so ImageNet
weights load by name through :func:`torch_name`:

    stem     conv1 (7x7/2, pad 3) -> bn1 -> relu -> maxpool (3x3/2, pad 1)
    layer1   stride 1                                   (/4)
    layer2   stride 2                                   (/8)
    layer3   stride 2, or 1 with large_feature_map      (/16, or /8)
    layer4   stride 1 (WSOL: 224 px -> 14x14 maps)      (/16, or /8)

The stride of a stage sits on its first block (on the 3x3 conv `conv2` of a bottleneck, torchvision
"v1.5"); the first block of a stage has a projection shortcut `downsample.{0: 1x1 conv, 1: BN}` when
the stride or the channel count changes -- layer4's first block keeps it at stride 1 (512*e <- 256*e
channels), and so does layer3's with a large feature map.

Named stages (where inserted layers such as ADL plug in): `stem` (after the max pool),
`layer{i}_{j}` after block j of stage i, and `layer{i}` at the end of stage i (the same point as
its last block; layers configured at both run block name first).

SE module (timm `SEModule` facts): global average -> fc1 (1x1 conv with bias, C -> C/16 rounded to
a multiple of 8) -> ReLU -> fc2 (1x1 conv with bias) -> sigmoid gate on the output of bn3, before
the residual addition.
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.layers import ConvBN, max_pool
from wsolax.models.stages import Inserts, check_stages, insert

# name -> (blocks per stage, bottleneck, squeeze-excitation)
ARCHS: dict[str, tuple[tuple[int, int, int, int], bool, bool]] = {
    "resnet18": ((2, 2, 2, 2), False, False),
    "resnet34": ((3, 4, 6, 3), False, False),
    "resnet50": ((3, 4, 6, 3), True, False),
    "resnet101": ((3, 4, 23, 3), True, False),
    "se_resnet50": ((3, 4, 6, 3), True, True),
}
WIDTHS = (64, 128, 256, 512)  # `planes` of each stage; bottleneck outputs are 4x wider


def stage_names(blocks: tuple[int, ...]) -> tuple[str, ...]:
    """Stage names of a ResNet with `blocks` blocks per stage, in forward order."""
    names = ["stem"]
    for i, n in enumerate(blocks, start=1):
        names += [f"layer{i}_{j}" for j in range(n)]
        names.append(f"layer{i}")
    return tuple(names)


# backbone name -> its stage names
STAGES: dict[str, tuple[str, ...]] = {name: stage_names(spec[0]) for name, spec in ARCHS.items()}


def se_channels(channels: int, ratio: float = 1 / 16, divisor: int = 8) -> int:
    """SE bottleneck width: channels * ratio rounded to the nearest multiple of `divisor` (timm)."""
    return max(divisor, int(channels * ratio + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean_hw(x))))) with 1x1 convs (parameters `fc1`, `fc2`)."""

    reduced: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.relu(nn.Conv(self.reduced, (1, 1), dtype=self.dtype, name="fc1")(s))
        s = nn.Conv(x.shape[-1], (1, 1), dtype=self.dtype, name="fc2")(s)
        return x * nn.sigmoid(s).astype(x.dtype)


class BasicBlock(nn.Module):
    """conv1 3x3 (stride) -> conv2 3x3 [-> SE] + shortcut -> ReLU; output `planes` channels."""

    planes: int
    strides: int = 1
    se: bool = False
    bn_frozen: bool = False
    dtype: jnp.dtype = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        common = dict(bn_frozen=self.bn_frozen, dtype=self.dtype)
        out = ConvBN(self.planes, 3, self.strides, 1, name="conv1", **common)(x, train=train)
        out = ConvBN(self.planes, 3, 1, 1, relu=False, name="conv2", **common)(out, train=train)
        return _finish(self, x, out, train, common)


class Bottleneck(nn.Module):
    """conv1 1x1 -> conv2 3x3 (stride) -> conv3 1x1 (4*planes) [-> SE] + shortcut -> ReLU."""

    planes: int
    strides: int = 1
    se: bool = False
    bn_frozen: bool = False
    dtype: jnp.dtype = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        common = dict(bn_frozen=self.bn_frozen, dtype=self.dtype)
        out = ConvBN(self.planes, 1, 1, 0, name="conv1", **common)(x, train=train)
        out = ConvBN(self.planes, 3, self.strides, 1, name="conv2", **common)(out, train=train)
        out = ConvBN(self.planes * 4, 1, 1, 0, relu=False, name="conv3", **common)(out, train=train)
        return _finish(self, x, out, train, common)


def _finish(block: nn.Module, x: jax.Array, out: jax.Array, train: bool, common: dict) -> jax.Array:
    """Shared tail of both blocks (called inside their compact __call__): SE, shortcut, ReLU."""
    features = block.planes * block.expansion
    if block.se:
        out = SqueezeExcite(se_channels(features), dtype=block.dtype, name="se")(out)
    shortcut = x
    if block.strides != 1 or x.shape[-1] != features:
        shortcut = ConvBN(features, 1, block.strides, 0, relu=False, name="downsample",
                          **common)(x, train=train)
    return nn.relu(out + shortcut.astype(out.dtype))


class ResNet(nn.Module):
    """WSOL ResNet backbone: NHWC images -> features (B, H/16, W/16, 512*e); H/8 if large."""

    blocks: tuple[int, ...] = (3, 4, 6, 3)
    bottleneck: bool = True
    se: bool = False
    large_feature_map: bool = False
    bn_frozen: bool = False
    arch: str = "resnet50"  # for error messages
    inserts: Inserts = ()
    dtype: jnp.dtype = jnp.float32

    @property
    def stages(self) -> tuple[str, ...]:
        return stage_names(self.blocks)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, self.stages, self.arch)
        x = ConvBN(64, 7, 2, 3, bn_frozen=self.bn_frozen, dtype=self.dtype,
                   name="conv1")(x, train=train)
        x = max_pool(x, 3, 2, 1)
        x = insert(self, self.inserts, "stem", x, train)
        block_cls = Bottleneck if self.bottleneck else BasicBlock
        strides = (1, 2, 1 if self.large_feature_map else 2, 1)
        for i, (n, planes, stride) in enumerate(zip(self.blocks, WIDTHS, strides), start=1):
            for j in range(n):
                x = block_cls(planes, stride if j == 0 else 1, se=self.se, bn_frozen=self.bn_frozen,
                              dtype=self.dtype, name=f"layer{i}_{j}")(x, train=train)
                x = insert(self, self.inserts, f"layer{i}_{j}", x, train)
            x = insert(self, self.inserts, f"layer{i}", x, train)
        return x


def build_backbone(name: str, model_cfg, inserts: Inserts, dtype) -> ResNet:
    if name not in ARCHS:
        raise ValueError(f"unknown ResNet '{name}'; known: {sorted(ARCHS)}")
    blocks, bottleneck, se = ARCHS[name]
    return ResNet(blocks=blocks, bottleneck=bottleneck, se=se,
                  large_feature_map=bool(model_cfg.large_feature_map),
                  bn_frozen=bool(model_cfg.bn_frozen), arch=name, inserts=tuple(inserts),
                  dtype=dtype)


_BLOCK = re.compile(r"layer([1-4])_(\d+)")
_CONV = re.compile(r"conv([1-3])")


def torch_name(path: tuple[str, ...]) -> str | None:
    """Flax module path of a WSOLModel -> torch module prefix (torchvision / timm names).

    ("backbone", "conv1", "conv"|"bn")                      -> "conv1" | "bn1"
    ("backbone", "layerX_Y", "convK", "conv"|"bn")          -> "layerX.Y.convK" | "layerX.Y.bnK"
    ("backbone", "layerX_Y", "downsample", "conv"|"bn")     -> "layerX.Y.downsample.0" | ".1"
    ("backbone", "layerX_Y", "se", "fc1"|"fc2")             -> "layerX.Y.se.fc1" | ".fc2"
    ("head", "classifier")                                  -> "fc"
    anything else (inserted layers, ...)                    -> None
    """
    path = tuple(path)
    if path == ("head", "classifier"):
        return "fc"
    if not path or path[0] != "backbone":
        return None
    rest = path[1:]
    if rest == ("conv1", "conv"):
        return "conv1"
    if rest == ("conv1", "bn"):
        return "bn1"
    if len(rest) != 3:
        return None
    block, layer, leaf = rest
    m = _BLOCK.fullmatch(block)
    if m is None:
        return None
    prefix = f"layer{m.group(1)}.{m.group(2)}"
    conv = _CONV.fullmatch(layer)
    if conv is not None and leaf in ("conv", "bn"):
        return f"{prefix}.{leaf}{conv.group(1)}"
    if layer == "downsample" and leaf in ("conv", "bn"):
        return f"{prefix}.downsample.{0 if leaf == 'conv' else 1}"
    if layer == "se" and leaf in ("fc1", "fc2"):
        return f"{prefix}.se.{leaf}"
    return None
