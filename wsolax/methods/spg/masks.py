"""SPG's self-produced guidance as pure functions: upsampling, the attention maps, the pixel-level
pseudo-labels with their high / low thresholds and the binary cross-entropy that ignores the
undecided pixels. Each rule is the CVPR'20 benchmark's (clovaai/wsolevaluation `wsol/method/spg.py`
and `wsol/method/util.py`, the code the brief names as the reference); Zhang et al. ECCV'18
(Self-produced Guidance) is the method's paper.

Maps here are (B, H, W) (one map per image); everything runs in float32 (float64 in a float64
model) whatever the compute dtype, and the guidance maps are constants of the loss
(`jax.lax.stop_gradient`, the reference's `.detach()`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wsolax.precision import widen


@functools.lru_cache(maxsize=None)
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64: row i holds the weights of output pixel i under torch's bilinear
    resize with align_corners=False (`nn.Upsample(size=..., mode='bilinear')` in spg.py): source
    coordinate (i + 0.5) * n_in / n_out - 0.5, clamped at 0, between its floor and floor + 1
    (the last pixel repeats past the edge)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def upsample(maps: jax.Array, size: int) -> jax.Array:
    """(B, h, w) -> (B, size, size), bilinear as torch (separable: one matrix per axis)."""
    maps = widen(maps)
    rows = jnp.asarray(bilinear_matrix(maps.shape[1], size), maps.dtype)
    cols = jnp.asarray(bilinear_matrix(maps.shape[2], size), maps.dtype)
    return jnp.einsum("oh,bhw,pw->bop", rows, maps, cols)


def min_max_normalize(maps: jax.Array) -> jax.Array:
    """Each (B, H, W) map to [0, 1]: (x - min) / (max - min), `normalize_tensor` in util.py.

    A constant map is 0/0 = NaN there (and then poisons the loss); here it is all zeros, so its
    pixels fall under the low threshold (background) instead -- the one deviation.
    """
    lo = jnp.min(maps, axis=(1, 2), keepdims=True)
    hi = jnp.max(maps, axis=(1, 2), keepdims=True)
    valid = hi > lo
    return jnp.where(valid, (maps - lo) / jnp.where(valid, hi - lo, 1), 0)


def class_attention(class_maps: jax.Array, labels: jax.Array, size: int) -> jax.Array:
    """The attention of `compute_attention`: the class map (B, h, w, K) of each image's label,
    upsampled to size x size and then min-max normalised (`get_attention` on the upsampled maps;
    the label's channel is picked first here, which is the same since resizing acts per
    channel). A constant: no gradient reaches the class maps through it."""
    picked = jnp.take_along_axis(class_maps, labels[:, None, None, None], axis=-1)[..., 0]
    return min_max_normalize(upsample(jax.lax.stop_gradient(picked), size))


def fused_attention(logits_b1: jax.Array, logits_b2: jax.Array, size: int) -> jax.Array:
    """(sigmoid(up(B1)) + sigmoid(up(B2))) / 2 of the detached B-branch maps (B, h, w)
    (`_get_fused_attention`)."""
    b1 = jax.nn.sigmoid(upsample(jax.lax.stop_gradient(logits_b1), size))
    b2 = jax.nn.sigmoid(upsample(jax.lax.stop_gradient(logits_b2), size))
    return (b1 + b2) / 2.0


def pseudo_labels(guide: jax.Array, high: float, low: float, *, min_foreground: int = 30,
                  fallback_ratio: float = 0.7) -> tuple[jax.Array, jax.Array]:
    """(target, valid) of `get_mask` for guidance maps (B, H, W): per image,

    * foreground (target 1): pixels strictly above `high` (`mask_fg`: `attention > threshold`);
      when fewer than `min_foreground` pixels are (`sum < 30`), those strictly above
      `fallback_ratio` x the image's maximum (`max * 0.7`) instead;
    * background (target 0): pixels strictly below `low` (`mask_bg`: `attention < threshold`),
      applied after the foreground, so it wins where both hold (possible after the fallback);
    * every other pixel is ignored (the reference's 255): valid is False there.
    """
    guide = jax.lax.stop_gradient(guide)
    fg = guide > high
    count = jnp.sum(fg, axis=(1, 2), keepdims=True)
    fallback = guide > fallback_ratio * jnp.max(guide, axis=(1, 2), keepdims=True)
    fg = jnp.where(count < min_foreground, fallback, fg)
    bg = guide < low
    target = jnp.where(bg, 0.0, jnp.where(fg, 1.0, 0.0)).astype(guide.dtype)
    return target, fg | bg


def masked_bce(logits: jax.Array, target: jax.Array, valid: jax.Array) -> jax.Array:
    """`BCEWithLogitsLoss()` (mean) over the valid pixels of the whole batch (`loss_attention`
    keeps the pixels whose label is not 255, pooled over images). No valid pixel: 0 here (the
    reference's mean over nothing is NaN)."""
    logits = widen(logits)
    per_pixel = jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    weight = valid.astype(logits.dtype)
    return jnp.sum(per_pixel * weight) / jnp.maximum(jnp.sum(weight), 1)


def attention_loss(logits: jax.Array, guide: jax.Array, high: float, low: float, size: int, *,
                   min_foreground: int = 30, fallback_ratio: float = 0.7) -> jax.Array:
    """`_get_loss_attention`: BCE of a branch's upsampled logit map (B, h, w) against the
    pseudo-labels of `guide` (B, size, size)."""
    target, valid = pseudo_labels(guide, high, low, min_foreground=min_foreground,
                                  fallback_ratio=fallback_ratio)
    return masked_bce(upsample(logits, size), target, valid)


def spg_losses(out: dict, labels: jax.Array, hp) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The three guidance terms of `get_loss`, in its order (each weighted 1, added to the
    cross-entropy of the logits):

    * B2 against the CAM attention of the label, thresholds (1h, 1l);
    * B1 against sigmoid(up(B2)), thresholds (2h, 2l) -- B2's map guides B1, and only through
      the mask, so no gradient reaches B2 from this term;
    * C against the fused attention of B1 and B2, thresholds (3h, 3l).
    """
    size = hp.mask_size
    kw = dict(min_foreground=hp.min_foreground, fallback_ratio=hp.fallback_ratio)
    attention = class_attention(out["maps"], labels, size)
    b2_guide = jax.nn.sigmoid(upsample(out["logits_b2"], size))
    fused = fused_attention(out["logits_b1"], out["logits_b2"], size)
    loss_b2 = attention_loss(out["logits_b2"], attention, hp.threshold_1h, hp.threshold_1l, size,
                             **kw)
    loss_b1 = attention_loss(out["logits_b1"], b2_guide, hp.threshold_2h, hp.threshold_2l, size,
                             **kw)
    loss_c = attention_loss(out["logits_c"], fused, hp.threshold_3h, hp.threshold_3l, size, **kw)
    return loss_b2, loss_b1, loss_c
