"""1x1 convolutions as matrix products: a drop-in for `lax.conv_general_dilated`.

Why: on XLA:CPU the filter gradient of a 1x1 convolution, as `jax.grad` lowers it (a convolution
whose "window" is the whole feature map), is several times slower than the same numbers computed
as one matrix product: ResNet50's float32 train step spends most of its time there
(benchmarks/cpu_conv_backward.py, docs/speed.md "Where the CPU float32 train step's time goes").
An unpadded, undilated, ungrouped 1x1 convolution with stride s *is* a matrix product over
channels of the input subsampled by s, and the gradients of a matrix product are matrix products,
which XLA:CPU runs fast. Every other convolution goes to `lax.conv_general_dilated` unchanged.

`resolve(choice)` picks what a layer passes to flax's `nn.Conv(conv_general_dilated=...)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax import lax

CHOICES = ("auto", "conv", "dot")


def _is_plain_1x1(rhs_shape, dn: lax.ConvDimensionNumbers, window_strides, padding, lhs_dilation,
                  rhs_dilation, feature_group_count, batch_group_count, lhs_shape) -> bool:
    spatial = dn.rhs_spec[2:]
    if any(rhs_shape[d] != 1 for d in spatial):
        return False
    if feature_group_count != 1 or batch_group_count != 1:
        return False
    if any(d != 1 for d in (lhs_dilation or ())) or any(d != 1 for d in (rhs_dilation or ())):
        return False
    if isinstance(padding, str):
        # 'SAME'/'VALID' of a 1x1 window pad nothing; resolved rather than assumed
        in_sizes = [lhs_shape[d] for d in dn.lhs_spec[2:]]
        padding = lax.padtype_to_pads(in_sizes, (1,) * len(spatial), window_strides, padding)
    return all(tuple(p) == (0, 0) for p in padding)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding, lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
                         feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None,
                         out_sharding=None) -> jax.Array:
    """`lax.conv_general_dilated` (same signature and result), with an unpadded, undilated,
    ungrouped 1x1 convolution computed as a strided slice then `lax.dot_general` over channels.

    Any dimension numbers and any strides. Everything else (kxk kernels, padding, dilation,
    feature/batch groups, an explicit out_sharding) is passed to `lax.conv_general_dilated`.
    """
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    plain = out_sharding is None and _is_plain_1x1(
        rhs.shape, dn, window_strides, padding, lhs_dilation, rhs_dilation, feature_group_count,
        batch_group_count, lhs.shape)
    if not plain:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, precision=precision,
            preferred_element_type=preferred_element_type, out_sharding=out_sharding)
    strides = [1] * lhs.ndim
    for axis, s in zip(dn.lhs_spec[2:], window_strides):
        strides[axis] = s
    if any(s != 1 for s in strides):
        # output size floor((n - 1) / s) + 1 = ceil(n / s): the slice's size
        lhs = lax.slice(lhs, (0,) * lhs.ndim, lhs.shape, strides)
    lhs_feature, rhs_in, rhs_out = dn.lhs_spec[1], dn.rhs_spec[1], dn.rhs_spec[0]
    # rhs as a matrix: its 1-sized spatial axes squeezed away, in/out kept in their order
    w = lax.squeeze(rhs, dn.rhs_spec[2:])
    w_in = 0 if rhs_in < rhs_out else 1
    y = lax.dot_general(lhs, w, (((lhs_feature,), (w_in,)), ((), ())), precision=precision,
                        preferred_element_type=preferred_element_type)
    # y's axes: lhs's axes except the feature one, in order, then the output feature; put each
    # logical dimension (batch, feature, spatial...) where out_spec wants it
    rest = [a for a in range(lhs.ndim) if a != lhs_feature]
    y_axis_of_role = [rest.index(dn.lhs_spec[0]), lhs.ndim - 1] + [
        rest.index(a) for a in dn.lhs_spec[2:]]
    perm = [0] * lhs.ndim
    for role, out_axis in enumerate(dn.out_spec):
        perm[out_axis] = y_axis_of_role[role]
    return y if perm == list(range(lhs.ndim)) else lax.transpose(y, perm)


def resolve(choice: str):
    """What a layer passes to `nn.Conv(conv_general_dilated=...)` for `choice`, at trace time.

    "conv": None (flax's default, `lax.conv_general_dilated` for every convolution).
    "dot": :func:`conv_general_dilated` (1x1 convolutions as matrix products) on every backend.
    "auto": "dot" on CPU, "conv" elsewhere. Only XLA:CPU lowers a 1x1 filter gradient slowly; on
    GPU/TPU the vendor convolution kernels (cuDNN, the TPU's convolution emitter) already run 1x1
    convolutions at matrix-product speed, and keeping their own lowering there leaves their
    layout and fusion choices alone. Decided when the layer is traced (`jax.default_backend()`),
    which is when the backend that will run it is known.
    """
    if choice not in CHOICES:
        raise ValueError(f"unknown 1x1 convolution formulation {choice!r}; known: {CHOICES}")
    if choice == "auto":
        choice = "dot" if jax.default_backend() == "cpu" else "conv"
    return conv_general_dilated if choice == "dot" else None
