"""JAX score-map preparation vs OpenCV / the reference normalisation."""

from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.evaluation.reference_scoremap import normalize_scoremap_np, prepare_scoremap_cv2
from wsolax.localization.device_scoremap import (cubic_resize_matrix, normalize_scoremaps,
                                                 resize_cams)

SHAPES = [  # (h, w) -> (H, W): up, down, non-square, identity, 1-pixel
    ((14, 14), (224, 224)), ((7, 7), (224, 224)), ((14, 10), (33, 57)),
    ((100, 80), (37, 29)), ((16, 16), (8, 8)), ((30, 20), (7, 3)),
    ((5, 9), (5, 9)), ((1, 5), (3, 7)), ((28, 28), (224, 224)),
]


@pytest.mark.parametrize("src, dst", SHAPES)
def test_resize_matches_cv2_inter_cubic(src, dst):
    rng = np.random.default_rng(0)
    cams = rng.random((3, *src), dtype=np.float32)
    expected = np.stack([cv2.resize(c, dst[::-1],
                                    interpolation=cv2.INTER_CUBIC)
                         for c in cams])
    ours = np.asarray(resize_cams(jnp.asarray(cams), dst))
    assert ours.shape == (3, *dst)
    assert np.abs(ours - expected).max() <= 1e-5


def test_resize_matrix_is_cv2_on_basis_vectors():
    """cv2 resizing the identity exposes its effective weights."""
    for n_in, n_out in [(14, 224), (100, 37), (10, 57), (16, 8), (3, 3)]:
        basis = cv2.resize(np.eye(n_in, dtype=np.float32), (n_out, n_in),
                           interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(cubic_resize_matrix(n_in, n_out),
                                   basis.T, atol=3e-7)


def test_resize_is_jittable_in_a_larger_function():
    @jax.jit
    def prepare(cams):
        return normalize_scoremaps(resize_cams(cams, (32, 48)))

    out = prepare(jnp.ones((2, 4, 4)) * jnp.arange(4.0))
    assert out.shape == (2, 32, 48)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_normalize_matches_reference_rule():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(6, 20, 30)).astype(np.float32) * 5
    maps[1] = 0.3                      # constant -> zeros
    maps[2, 3, 4] = np.nan             # NaN -> zeros
    maps[3] = 0.0
    maps[3, 0, 0] = 2.0                # single peak
    ours = np.asarray(normalize_scoremaps(jnp.asarray(maps)))
    reference = np.stack([normalize_scoremap_np(m) for m in maps])
    for i in (1, 2):
        assert (ours[i] == 0).all() and (reference[i] == 0).all()
    # XLA's float32 division may differ from IEEE by 1 ulp.
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1.2e-7)
    assert ours.min() == 0.0 and ours.max() == 1.0


def test_prepare_scoremap_cv2_is_literal_reference():
    """The reference casts the CAM to float64 (t2n) before cv2.resize, so the resize and the
    normalisation are float64."""
    rng = np.random.default_rng(2)
    cam = rng.random((7, 9), dtype=np.float32)
    resized = cv2.resize(cam.astype(np.float64), (40, 30), interpolation=cv2.INTER_CUBIC)
    resized -= resized.min()
    resized /= resized.max()
    prepared = prepare_scoremap_cv2(cam, (30, 40))
    assert prepared.dtype == np.float64
    np.testing.assert_array_equal(prepared, resized)
    assert (prepare_scoremap_cv2(np.ones((14, 14)), (224, 224)) == 0).all()


def test_float32_resize_of_a_constant_cam_is_not_constant():
    """Why the default path resizes in float64: cv2's float32 resize of a constant CAM ripples
    by an ulp (products rounded to float32) and min-max would stretch that to [0, 1]; the
    reference's float64 resize of the same float32 values is exactly constant -> zeros."""
    cam = np.full((7, 9), 0.37, np.float32)
    resized32 = cv2.resize(cam, (40, 30), interpolation=cv2.INTER_CUBIC)
    assert resized32.min() != resized32.max()
    assert (prepare_scoremap_cv2(cam, (30, 40)) == 0).all()
