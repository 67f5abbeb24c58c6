"""The complementary image pair of "Where to Look" (Babar & Das, WACV 2021, Sec. 3.1 and 4.3).

X hides random square patches of the image, as Hide-and-Seek (Singh & Lee, ICCV 2017) does: the
image is cut into a grid of `patch_size` cells starting at the top-left corner (the last row and
column of cells are cut short when the size does not divide the image), and each cell is hidden
independently with probability `hide_prob` (0.5 in the paper). X~ shows exactly the cells hidden in
X and hides the rest, so the two views partition the image.

Patch size: one fixed size, or -- the paper's best "Mixed" setting (Table 6) -- drawn uniformly from
`patch_sizes` for every image at every step. Both cases are the same code: a tuple of candidate
sizes, one drawn per image (a 1-tuple is the fixed setting).

Hidden pixels take `fill`. HaS hides with the dataset mean; after wsolax's mean/std normalisation
that is 0, the default.

Everything is drawn on device from an explicit key, per image, so the pair is identical however
the batch is sharded (no per-image Python, no host randomness).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def hidden_mask(key: jax.Array, batch: int, height: int, width: int, *,
                patch_sizes: Sequence[int], hide_prob: float = 0.5) -> jax.Array:
    """(batch, height, width) bool: True where X hides the pixel (and X~ shows it)."""
    if not patch_sizes or min(patch_sizes) < 1:
        raise ValueError(f"patch_sizes must be positive sizes, got {tuple(patch_sizes)}")
    size_key, cells_key = jax.random.split(key)
    rows, cols = jnp.arange(height), jnp.arange(width)
    candidates = []
    for p, k in zip(patch_sizes, jax.random.split(cells_key, len(patch_sizes))):
        grid = (batch, -(-height // p), -(-width // p))
        cells = jax.random.bernoulli(k, hide_prob, grid)
        candidates.append(cells[:, rows // p][:, :, cols // p])
    if len(candidates) == 1:
        return candidates[0]
    choice = jax.random.randint(size_key, (batch,), 0, len(candidates))
    stacked = jnp.stack(candidates, axis=1)  # (B, sizes, H, W)
    return jnp.take_along_axis(stacked, choice[:, None, None, None], axis=1)[:, 0]


def complementary_pair(key: jax.Array, images: jax.Array, *, patch_sizes: Sequence[int],
                       hide_prob: float = 0.5, fill: float = 0.0):
    """(X, X~, hidden) for NHWC `images`: X hides `hidden`, X~ hides its complement."""
    b, h, w, _ = images.shape
    hidden = hidden_mask(key, b, h, w, patch_sizes=patch_sizes, hide_prob=hide_prob)[..., None]
    fill = jnp.asarray(fill, images.dtype)
    x = jnp.where(hidden, fill, images)
    x_tilde = jnp.where(hidden, images, fill)
    return x, x_tilde, hidden[..., 0]


def scaled_patch_sizes(image_size: int, paper_sizes: Sequence[int] = (16, 32, 44, 56),
                       paper_image_size: int = 224) -> tuple[int, ...]:
    """The paper's patch sizes (for 224 px crops) scaled to another crop size, at least 1 px."""
    return tuple(max(1, round(p * image_size / paper_image_size)) for p in paper_sizes)
