"""CAAM and SSAM, the two attention modules of "Where to Look" (Babar & Das, WACV 2021).

Both act on NHWC feature maps of the two views (B, H, W, C), N = H*W positions, and compute their
attention in float32 (softmax over hundreds of dot products) before returning the input's dtype.

CAAM (Sec. 3.3, Eqs. 1-6), channel attention across the pair. With F_x, F_x~ reshaped to C x N:
  E = F_x F_x~^T (C x C);  Q_x = Softmax(E) (Eq. 1);  Y_x = Q_x^T F_x~ (Eq. 2);
  F^c_x = F_x + delta_x Y_x, i.e. (Eq. 4) F^c_x[i] = F_x[i] + delta_x sum_k lambda_x^{ki} F_x~[k]
  with lambda_x^{ki} = Q_x[k, i];
  Q_x~ = Softmax(E^T) (Eq. 5: the energy is shared and transposed, the softmax taken again);
  F^c_x~[i] = F_x~[i] + delta_x~ sum_k lambda_x~^{ki} F_x[k] (Eq. 6).
Eq. 1 does not name the softmax's axis. Default (`softmax="summed_index"`): over k, the index that
Eq. 4 sums, so each output channel's weights sum to 1 and F^c is "a weighted sum" of the other
view's channels, as the text after Eq. 4 says. DANet (Fu et al. [11]), whose channel attention
CAAM adapts, normalises the same way: its x_ji is a softmax over i and E_j sums x_ji A_i over i
(its code: softmax over the last dim, then bmm(attention, value), which sums that dim).
`softmax="row"` is the earlier wsolax reading: a softmax over each row of E, then Q^T, so the
weights summed for a channel are a column of a row softmax (they add up to anything in (0, C)).
delta_x and delta_x~ are separate learned scalars, initialised to 0 (so CAAM starts as the
identity). DANet's code also subtracts the energy from its row maximum before the softmax; its
paper and Eq. 1 do not, and neither does wsolax.

SSAM (Sec. 3.4, Eq. 7), SAGAN-style spatial self-attention on each view: M, L (C/8 channels) and P
(C channels) are 1x1 convolutions with bias; K = softmax(M^T L) row-wise (N x N); R = P K^T;
F^s = F + alpha R with alpha a learned scalar initialised to 0. Here the product R = P K^T sums
K's last index, the one the softmax normalises, so there is no axis to choose.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.precision import widen


CAAM_SOFTMAX = ("summed_index", "row")


def caam(f_x: jax.Array, f_x_tilde: jax.Array, delta_x, delta_x_tilde,
         softmax: str = "summed_index"):
    """(F^c_x, F^c_x~) for NHWC maps of the two views; the deltas are scalars; `softmax` the axis
    reading (module docstring)."""
    if softmax not in CAAM_SOFTMAX:
        raise ValueError(f"softmax must be one of {CAAM_SOFTMAX}, got {softmax!r}")
    dtype = f_x.dtype
    b, h, w, c = f_x.shape
    fx = widen(f_x.reshape(b, h * w, c))
    fxt = widen(f_x_tilde.reshape(b, h * w, c))
    energy = jnp.einsum("bni,bnj->bij", fx, fxt)  # E[i, j] = <F_x[i], F_x~[j]>
    # lambda^{ki} = Q[k, i]; Eq. 4 sums over k, the first index.
    axis = -2 if softmax == "summed_index" else -1
    q_x = jax.nn.softmax(energy, axis=axis)
    q_x_tilde = jax.nn.softmax(jnp.swapaxes(energy, 1, 2), axis=axis)
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

    softmax: str = "summed_index"

    @nn.compact
    def __call__(self, f_x: jax.Array, f_x_tilde: jax.Array):
        delta_x = self.param("delta_x", nn.initializers.zeros, ())
        delta_x_tilde = self.param("delta_x_tilde", nn.initializers.zeros, ())
        return caam(f_x, f_x_tilde, delta_x, delta_x_tilde, self.softmax)


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
