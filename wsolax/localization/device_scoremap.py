"""Score-map preparation on device (opt-in): CAM -> input-size map in [0, 1], in float32.

The protocol resizes the CAM of the chosen class to the input size with OpenCV's bicubic
interpolation, then min-max normalises it (a constant or NaN-containing map becomes all zeros).
The reference does both in float64 (its CAMs are cast to float64 before `cv2.resize`); the
default evaluation path does exactly that on the host (`reference_scoremap.py`).

`resize_cams` / `normalize_scoremaps` are the opt-in alternative that keeps the work on the
device (`eval.scoremap = "device_float32"`): jittable JAX, bicubic resizing as two float32
matmuls with fixed interpolation matrices built to match cv2.INTER_CUBIC.  They are not
bit-identical to the reference: errors of a few float32 ulps of the CAM's magnitude, which
min-max normalisation multiplies by magnitude / range (bound: 64 (1 + max|R| / range R) 2^-24,
R the resized map) -- harmless on ordinary CAMs (8-bit maps then differ by at most one level),
but a constant float32 CAM, exactly constant after the reference's float64 resize at every
scale, comes out of the float32 resize with ripples that normalisation stretches to [0, 1].
docs/evaluation.md has the measured deviation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


# OpenCV's bicubic kernel parameter.
_CUBIC_A = -0.75


def _cubic_coefficients(t: np.ndarray) -> np.ndarray:
    """OpenCV's 4 cubic weights for fractional offsets t; the last weight
    makes the row sum to 1.  Evaluated in float64 and rounded once: that
    reproduces cv2's effective weights to 1 ulp, float32 evaluation only
    to ~1e-6 (measured by resizing identity images with cv2)."""
    a = _CUBIC_A
    c0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    c1 = ((a + 2) * t - (a + 3)) * t * t + 1
    c2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    c3 = 1 - c0 - c1 - c2
    return np.stack([c0, c1, c2, c3], axis=-1)


@functools.lru_cache(maxsize=64)
def _cubic_resize_matrix_cached(in_size: int, out_size: int) -> np.ndarray:
    scale = 1.0 / (out_size / in_size)
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    base = np.floor(src).astype(np.int64)
    coeffs = _cubic_coefficients(src - base).astype(np.float32)
    matrix = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    for k in range(4):
        # Taps outside the image replicate the border pixel.
        cols = np.clip(base - 1 + k, 0, in_size - 1)
        np.add.at(matrix, (rows, cols), coeffs[:, k])
    matrix.setflags(write=False)
    return matrix


def cubic_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 matrix M with M @ x = cv2 INTER_CUBIC
    resize of x along one axis (up to float rounding)."""
    return _cubic_resize_matrix_cached(int(in_size), int(out_size))


@functools.partial(jax.jit, static_argnames="out_hw")
def resize_cams(cams: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """Bicubic-resize (B, h, w) CAMs to (B, H, W) like cv2.INTER_CUBIC."""
    _, h, w = cams.shape
    rows = jnp.asarray(cubic_resize_matrix(h, out_hw[0]))
    cols = jnp.asarray(cubic_resize_matrix(w, out_hw[1]))
    return jnp.einsum("Hh,bhw,Ww->bHW", rows, cams.astype(jnp.float32), cols,
                      precision=jax.lax.Precision.HIGHEST)


@jax.jit
def normalize_scoremaps(maps: jax.Array) -> jax.Array:
    """Per-map min-max normalisation of (B, H, W) maps to [0, 1].

    Same operations as the reference (subtract the min, divide by the max of
    the result); constant or NaN-containing maps become zeros.
    """
    shifted = maps - maps.min(axis=(-2, -1), keepdims=True)
    peak = shifted.max(axis=(-2, -1), keepdims=True)
    has_nan = jnp.isnan(maps).any(axis=(-2, -1), keepdims=True)
    valid = (peak > 0) & ~has_nan
    return jnp.where(valid, shifted / jnp.where(valid, peak, 1), 0)
