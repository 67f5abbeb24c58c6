"""CAAM and SSAM, the two attention modules of "Where to Look" (Babar & Das, WACV 2021).

Both act on NHWC feature maps of the two views (B, H, W, C), N = H*W positions, and compute their
attention in float32 (softmax over hundreds of dot products) before returning the input's dtype.

CAAM (Sec. 3.3, Eqs. 1-6), channel attention across the pair. With F_x, F_x~ reshaped to C x N:
  E = F_x F_x~^T (C x C);  Q_x = softmax(E) row-wise;  Y_x = Q_x^T F_x~;  F^c_x = F_x + delta_x Y_x
  Q_x~ = softmax(E^T) row-wise (the paper's "transpose of Q_x": the energy is shared and transposed,
  the softmax is taken again);  Y_x~ = Q_x~^T F_x;  F^c_x~ = F_x~ + delta_x~ Y_x~.
Eqs. 2 and 4 are applied literally (Q^T, i.e. Y[i] = sum_k Q[k, i] F~[k]); the softmax is over the
last index as in the channel attention of Fu et al. [11] that CAAM adapts. delta_x and delta_x~
are separate learned scalars, initialised to 0 (so CAAM starts as the identity).

SSAM (Sec. 3.4, Eq. 7), SAGAN-style spatial self-attention on each view: M, L (C/8 channels) and P
(C channels) are 1x1 convolutions with bias; K = softmax(M^T L) row-wise (N x N); R = P K^T;
F^s = F + alpha R with alpha a learned scalar initialised to 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.precision import widen


def caam(f_x: jax.Array, f_x_tilde: jax.Array, delta_x, delta_x_tilde):
    """(F^c_x, F^c_x~) for NHWC maps of the two views; the deltas are scalars."""
    dtype = f_x.dtype
    b, h, w, c = f_x.shape
    fx = widen(f_x.reshape(b, h * w, c))
    fxt = widen(f_x_tilde.reshape(b, h * w, c))
    energy = jnp.einsum("bni,bnj->bij", fx, fxt)  # E[i, j] = <F_x[i], F_x~[j]>
    q_x = jax.nn.softmax(energy, axis=-1)
    q_x_tilde = jax.nn.softmax(jnp.swapaxes(energy, 1, 2), axis=-1)
    y_x = jnp.einsum("bki,bnk->bni", q_x, fxt)  # Y_x[i] = sum_k Q_x[k, i] F_x~[k]
    y_x_tilde = jnp.einsum("bki,bnk->bni", q_x_tilde, fx)
    out_x = fx + jnp.asarray(delta_x, fx.dtype) * y_x
    out_x_tilde = fxt + jnp.asarray(delta_x_tilde, fx.dtype) * y_x_tilde
    return (out_x.reshape(b, h, w, c).astype(dtype),
            out_x_tilde.reshape(b, h, w, c).astype(dtype))


def ssam(f: jax.Array, query, key, value, alpha):
    """F^s = F + alpha R for an NHWC map; query/key/value are (kernel (C, C'), bias (C',)) pairs."""
    dtype = f.dtype
    b, h, w, c = f.shape
    x = widen(f.reshape(b, h * w, c))

    def project(params):
        kernel, bias = params
        return x @ jnp.asarray(kernel, x.dtype) + jnp.asarray(bias, x.dtype)

    m, l, p = project(query), project(key), project(value)
    k = jax.nn.softmax(jnp.einsum("bic,bjc->bij", m, l), axis=-1)  # K[i, j] = softmax_j <M_i, L_j>
    r = jnp.einsum("bij,bjc->bic", k, p)  # R[:, i] = sum_j P[:, j] K[i, j]
    out = x + jnp.asarray(alpha, x.dtype) * r
    return out.reshape(b, h, w, c).astype(dtype)


class CAAM(nn.Module):
    """Learned deltas (init 0) around `caam`."""

    @nn.compact
    def __call__(self, f_x: jax.Array, f_x_tilde: jax.Array):
        delta_x = self.param("delta_x", nn.initializers.zeros, ())
        delta_x_tilde = self.param("delta_x_tilde", nn.initializers.zeros, ())
        return caam(f_x, f_x_tilde, delta_x, delta_x_tilde)


class SSAM(nn.Module):
    """1x1 projections (C/8, C/8, C) and a learned alpha (init 0) around `ssam`."""

    reduction: int = 8

    @nn.compact
    def __call__(self, f: jax.Array) -> jax.Array:
        c = f.shape[-1]
        reduced = max(1, c // self.reduction)
        init = nn.initializers.lecun_normal()

        def projection(name, features):
            return (self.param(f"{name}_kernel", init, (c, features)),
                    self.param(f"{name}_bias", nn.initializers.zeros, (features,)))

        query, key, value = projection("query", reduced), projection("key", reduced), \
            projection("value", c)
        alpha = self.param("alpha", nn.initializers.zeros, ())
        return ssam(f, query, key, value, alpha)
