"""InceptionV3, WSOL variant (SPG / ADL / the CVPR'20 benchmark "Evaluating WSOL Methods Right").

Source layout: torchvision `inception_v3` names (`Conv2d_1a_3x3.conv` / `.bn`, `Mixed_5b.branch1x1`,
...). Every conv is bias-free and followed by BatchNorm (eps 0.001) and ReLU; Flax modules carry the
same names, so a torch prefix is the Flax path joined by dots.

WSOL changes to torchvision's network (facts of the benchmark's `wsol/inception.py`):

* `Conv2d_1a_3x3` has padding 1 (torchvision: 0);
* the two stem max pools are 3x3/2 with padding 1 and ceil_mode (torchvision: no padding);
* `Mixed_6a` is not strided: its two 3x3 convs have stride 1, padding 1, and its max-pool branch
  is 3x3 stride 1 padding 1 -- the map keeps its size;
* with ``model.large_feature_map=False`` (default) an extra 3x3/2 max pool (no padding, ceil_mode)
  sits between `Mixed_5d` and `Mixed_6a`; ``large_feature_map=True`` drops it;
* `Mixed_7a/7b/7c`, `AuxLogits` and `fc` are removed;
* new: two 3x3 convs (padding 1, with bias) 768 -> 1024 -> 1024, each + ReLU, at
  ``backbone/wsol_head_conv1`` and ``backbone/wsol_head_conv2`` (the prefix "backbone/wsol_" marks
  them for the x10 learning rate via `optim.new_layer_prefixes`); ``head_features=0`` leaves
  them out (set when the config selects the method ``acol``: the benchmark's `InceptionAcol`
  feeds Mixed_6e's 768-channel map straight to ACoL's classifiers);
* the benchmark's 1x1 class conv (`SPG_A4`, 1024 -> classes) followed by global average pooling is
  the shared `GAPLinearHead`: a linear map commutes with spatial averaging, so GAP -> linear gives
  the same logits, and the class-activation map of the 1x1 conv is the classifier applied at every
  position -- what the head computes (scaled by 1/C and without the bias, a positive affine change
  that min-max CAM normalisation removes). The benchmark's CAM variant also applies dropout (0.5)
  around the two new convs while training; that is a method choice, not part of this backbone.

Feature sizes at 224 px: Conv2d_1a 112, Conv2d_2a/2b 110, pool 56, Conv2d_3b 56, Conv2d_4a 54,
pool 28, Mixed_5b-5d 28x28x288; then default: extra pool -> 14, Mixed_6a-6e 14x14x768, features
14x14x1024; ``large_feature_map=True``: Mixed_6a-6e 28x28x768, features 28x28x1024.

Named stages (``model.inserts``): ``Mixed_5b`` ... ``Mixed_5d`` (a layer inserted at Mixed_5d comes
before the extra pool, as the benchmark's ADL_5d), ``extra_pool`` (after the extra pool; at its
place with the large map, where there is none), ``Mixed_6a`` ... ``Mixed_6e``, ``head_conv1``
and ``head_conv2`` (after each new conv + ReLU).

SPG (the benchmark's `InceptionSpg`, set when the config inserts the method ``spg``): its B1
branch reads the features after the extra pool (``extra_pool``), B2 Mixed_6d's; no new convs here
(``head_features=0``): SPG's head holds SPG_A3_1b / SPG_A3_2b with their dropout
(wsolax.methods.spg).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.layers import ConvBN, avg_pool, max_pool, pad
from wsolax.models.stages import Inserts, check_stages, insert

STAGES = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "extra_pool", "Mixed_6a", "Mixed_6b", "Mixed_6c",
          "Mixed_6d", "Mixed_6e", "head_conv1", "head_conv2")
_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
_TORCH_MODULES = frozenset(_STEM + tuple(s for s in STAGES if s.startswith("Mixed_")))
BN_EPS = 1e-3


class _Block(nn.Module):
    """Base of the Inception blocks: `conv(name, features, kernel, ...)` builds a named ConvBN."""

    bn_frozen: bool = False
    dtype: jnp.dtype = jnp.float32

    def conv(self, name, features, kernel, strides=1, padding=0):
        return ConvBN(features, kernel, strides=strides, padding=padding, bn_frozen=self.bn_frozen,
                      bn_epsilon=BN_EPS, dtype=self.dtype, name=name)


class InceptionA(_Block):
    pool_features: int = 32

    @nn.compact
    def __call__(self, x, *, train):
        b1 = self.conv("branch1x1", 64, 1)(x, train=train)
        b5 = self.conv("branch5x5_1", 48, 1)(x, train=train)
        b5 = self.conv("branch5x5_2", 64, 5, padding=2)(b5, train=train)
        b3 = self.conv("branch3x3dbl_1", 64, 1)(x, train=train)
        b3 = self.conv("branch3x3dbl_2", 96, 3, padding=1)(b3, train=train)
        b3 = self.conv("branch3x3dbl_3", 96, 3, padding=1)(b3, train=train)
        bp = self.conv("branch_pool", self.pool_features, 1)(avg_pool(x, 3, 1, 1), train=train)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
    """Mixed_6a; WSOL: stride 1, padding 1 on the 3x3 convs and on the max pool (size kept)."""

    strides: int = 1
    padding: int = 1

    @nn.compact
    def __call__(self, x, *, train):
        b3 = self.conv("branch3x3", 384, 3, self.strides, self.padding)(x, train=train)
        bd = self.conv("branch3x3dbl_1", 64, 1)(x, train=train)
        bd = self.conv("branch3x3dbl_2", 96, 3, padding=1)(bd, train=train)
        bd = self.conv("branch3x3dbl_3", 96, 3, self.strides, self.padding)(bd, train=train)
        bp = max_pool(x, 3, self.strides, padding=1)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(_Block):
    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x, *, train):
        c7 = self.channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of 1x7 and 7x1
        b1 = self.conv("branch1x1", 192, 1)(x, train=train)
        b7 = self.conv("branch7x7_1", c7, 1)(x, train=train)
        for name, out, (kernel, padding) in (("branch7x7_2", c7, row), ("branch7x7_3", 192, col)):
            b7 = self.conv(name, out, kernel, padding=padding)(b7, train=train)
        bd = self.conv("branch7x7dbl_1", c7, 1)(x, train=train)
        for i, (out, (kernel, padding)) in enumerate(((c7, col), (c7, row), (c7, col), (192, row))):
            bd = self.conv(f"branch7x7dbl_{i + 2}", out, kernel, padding=padding)(bd, train=train)
        bp = self.conv("branch_pool", 192, 1)(avg_pool(x, 3, 1, 1), train=train)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionV3WSOL(nn.Module):
    large_feature_map: bool = False
    bn_frozen: bool = False
    head_features: int = 1024
    inserts: Inserts = ()
    dtype: jnp.dtype = jnp.float32
    # The two new convs' kernels: "flax" (LeCun normal) or "wsolevaluation" (its InceptionCam's
    # initialize_weights 'xavier': Xavier uniform); biases start at 0 either way.
    new_conv_init: str = "flax"
    stages = STAGES

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, STAGES, "inception_v3")
        kw = dict(bn_frozen=self.bn_frozen, dtype=self.dtype)
        conv = functools.partial(ConvBN, bn_frozen=self.bn_frozen, bn_epsilon=BN_EPS,
                                 dtype=self.dtype)
        x = conv(32, 3, strides=2, padding=1, name="Conv2d_1a_3x3")(x, train=train)
        x = conv(32, 3, name="Conv2d_2a_3x3")(x, train=train)
        x = conv(64, 3, padding=1, name="Conv2d_2b_3x3")(x, train=train)
        x = max_pool(x, 3, 2, padding=1, ceil_mode=True)
        x = conv(80, 1, name="Conv2d_3b_1x1")(x, train=train)
        x = conv(192, 3, name="Conv2d_4a_3x3")(x, train=train)
        x = max_pool(x, 3, 2, padding=1, ceil_mode=True)
        for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = InceptionA(pool_features=pool_features, name=name, **kw)(x, train=train)
            x = insert(self, self.inserts, name, x, train)
        if not self.large_feature_map:
            x = max_pool(x, 3, 2, ceil_mode=True)
        x = insert(self, self.inserts, "extra_pool", x, train)
        x = InceptionB(strides=1, padding=1, name="Mixed_6a", **kw)(x, train=train)
        x = insert(self, self.inserts, "Mixed_6a", x, train)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                         ("Mixed_6e", 192)):
            x = InceptionC(channels_7x7=c7, name=name, **kw)(x, train=train)
            x = insert(self, self.inserts, name, x, train)
        if not self.head_features:
            return x
        init = ({"kernel_init": nn.initializers.xavier_uniform()}
                if self.new_conv_init == "wsolevaluation" else {})
        for i in (1, 2):
            x = nn.relu(nn.Conv(self.head_features, (3, 3), padding=pad(1), dtype=self.dtype,
                                name=f"wsol_head_conv{i}", **init)(x))
            x = insert(self, self.inserts, f"head_conv{i}", x, train)
        return x


def build_backbone(name: str, model_cfg, inserts: Inserts, dtype) -> nn.Module:
    if name != "inception_v3":
        raise ValueError(f"wsolax.models.inception builds 'inception_v3', not '{name}'")
    spg = any(method == "spg" for _, method in model_cfg.inserts)
    return InceptionV3WSOL(large_feature_map=bool(model_cfg.large_feature_map),
                           bn_frozen=bool(model_cfg.bn_frozen), inserts=inserts,
                           head_features=0 if "acol" in model_cfg.methods or spg else 1024,
                           dtype=dtype, new_conv_init=model_cfg.new_conv_init)


def torch_name(path: tuple[str, ...]) -> str | None:
    """Flax module path -> torchvision inception_v3 module prefix (the same names, dot-joined).

    None for the new convs (`wsol_head_conv*`), inserted layers (`<stage>_insert<i>`) and the
    classifier (torchvision's `fc` is 2048 -> 1000 after Mixed_7c, which the WSOL variant removes).
    """
    if len(path) >= 2 and path[0] == "backbone" and path[1] in _TORCH_MODULES:
        return ".".join(path[1:])
    return None
