"""CutMix (Yun et al., ICCV 2019), as the CVPR'20 benchmark's code runs it (Choe et al.,
"Evaluating WSOL Methods Right", github.com/clovaai/wsolevaluation: `wsol/method/cutmix.py`, called
from `main.py`'s `_wsol_training`; defaults from its config.py).

Selected by `config.model.methods.cutmix` (`{}`: the benchmark's defaults); a `transform` only, so
the model is the plain CAM model (the benchmark trains and evaluates CutMix with its 'cam'
architecture, config.py `get_architecture_type`) and evaluation is the plain CAM path (the
transform is the identity there).

The rule, as the reference applies it, once per batch:
* CutMix is applied to the batch with probability `prob` (`main.py`: `cutmix_prob >
  np.random.rand(1)`), else the batch trains with its plain labels;
* one lam ~ Beta(beta, beta) for the batch (`np.random.beta`), one permutation of the batch
  (`torch.randperm`): image i receives its patch from image perm[i] (perm may fix some i: that
  image is then unchanged and keeps its label);
* one box for the whole batch (`rand_bbox`): side ratio sqrt(1 - lam), box height
  int(H sqrt(1 - lam)) and width int(W sqrt(1 - lam)) (truncated), a centre drawn uniformly over
  the pixels (`np.random.randint` per axis), corners centre -/+ half the side (integer halves:
  an odd side loses a pixel), each clipped to the image. The reference names its axes the other
  way round (its `w` is dim 2 of NCHW, the height); the box is the same;
* the pixels in the box are replaced by perm's images' pixels (every channel);
* lam is corrected to the area actually kept, 1 - box area / (H W), and the loss is
  lam CE(logits, y) + (1 - lam) CE(logits, y[perm]). wsolax returns the labels as the class
  distributions lam onehot(y) + (1 - lam) onehot(y[perm]), whose mean cross-entropy is exactly
  that loss (the cross-entropy is linear in the target); the base cross-entropy of the train
  step (`classification_loss`) takes them. When CutMix is not applied the distribution is one-hot
  (the same loss as the integer labels). A batch whose labels already are distributions (another
  mixing transform before this one) is mixed the same way.
* the training accuracy is measured against the original labels (`main.py`: `pred == target`),
  as wsolax's train step does (it compares with the batch before the transforms).

Defaults: config.py `--cutmix_beta 1.0` (lam uniform on [0, 1], the paper's alpha = 1, Sec. 3.1)
and `--cutmix_prob 1.0`. The paper (Sec. 3.1) gives lam ~ Beta(alpha, alpha), a box of side
ratio sqrt(1 - lam) with a uniformly drawn centre, and two samples of the mini-batch mixed per
training sample; one lam, box and permutation per batch, the clipping at the border and the
area correction of lam are its code's (the benchmark's `cutmix.py` is a copy of the authors'),
which wsolax follows. The reference's `cutmix_beta > 0` guard (beta <= 0 turns CutMix off) is
replaced by refusing beta <= 0: to train without CutMix, do not select it.

Randomness: five draws from the transform's key (apply, lam, permutation, box row, box column), all
scalars or one permutation: a pure function of the key, the same however the batch is sharded.
The box side is computed in the default float type (float32 unless x64 is enabled) where the
reference uses float64: for a given lam the truncation can differ when H sqrt(1 - lam) falls
within float32 rounding of an integer (about 1e-5 of the draws at 224 px).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from wsolax.methods.api import Method, require

NAME = "cutmix"


@dataclasses.dataclass(frozen=True)
class CutMixHparams:
    """`beta`: lam ~ Beta(beta, beta) (config.py `--cutmix_beta`, 1.0); `prob`: the probability
    that a batch is mixed (`--cutmix_prob`, 1.0)."""

    beta: float = 1.0
    prob: float = 1.0

    def __post_init__(self):
        require(self.beta > 0, NAME, "beta",
                f"must be > 0, got {self.beta!r} (the benchmark's code skips CutMix at beta <= 0; "
                "to train without it, do not select the method)")
        require(0.0 <= self.prob <= 1.0, NAME, "prob", f"must be in [0, 1], got {self.prob!r}")


class Box(NamedTuple):
    """Rows [top, bottom) and columns [left, right) of the pasted box (int32 scalars)."""

    top: jax.Array
    left: jax.Array
    bottom: jax.Array
    right: jax.Array


class Draw(NamedTuple):
    """What `cutmix` drew and used, for tests and logging."""

    applied: jax.Array  # bool scalar
    lam_drawn: jax.Array  # the Beta draw
    lam: jax.Array  # the label weight of each image's own label (area-corrected; 1 if not applied)
    permutation: jax.Array  # (B,) int32
    center: tuple[jax.Array, jax.Array]  # (row, column)
    box: Box


def cut_box(lam, row_center, col_center, height: int, width: int) -> Box:
    """The reference's `rand_bbox` for a given lam and centre."""
    dtype = jnp.result_type(float)
    ratio = jnp.sqrt(1.0 - jnp.asarray(lam, dtype))
    cut_h = jnp.floor(height * ratio).astype(jnp.int32)
    cut_w = jnp.floor(width * ratio).astype(jnp.int32)
    row_center = jnp.asarray(row_center, jnp.int32)
    col_center = jnp.asarray(col_center, jnp.int32)
    return Box(top=jnp.clip(row_center - cut_h // 2, 0, height),
               left=jnp.clip(col_center - cut_w // 2, 0, width),
               bottom=jnp.clip(row_center + cut_h // 2, 0, height),
               right=jnp.clip(col_center + cut_w // 2, 0, width))


def box_mask(box: Box, height: int, width: int) -> jax.Array:
    """(H, W) bool, True inside the box."""
    rows, cols = jnp.arange(height), jnp.arange(width)
    in_rows = (rows >= box.top) & (rows < box.bottom)
    in_cols = (cols >= box.left) & (cols < box.right)
    return in_rows[:, None] & in_cols[None, :]


def kept_fraction(box: Box, height: int, width: int) -> jax.Array:
    """1 - box area / image area: the reference's corrected lam."""
    area = (box.bottom - box.top) * (box.right - box.left)
    return 1.0 - area.astype(jnp.result_type(float)) / (height * width)


def label_distribution(labels: jax.Array, num_classes: int) -> jax.Array:
    """(B, K) floats: one-hot of class indices, or the labels themselves if already (B, K)."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    if labels.ndim != 2 or labels.shape[-1] != num_classes:
        raise ValueError(f"labels of shape {labels.shape} are neither class indices nor "
                         f"distributions over {num_classes} classes")
    return labels


def cutmix(key: jax.Array, images: jax.Array, labels: jax.Array, *, num_classes: int,
           beta: float = 1.0, prob: float = 1.0) -> tuple[jax.Array, jax.Array, Draw]:
    """CutMix of an NHWC batch: (images, (B, K) label distributions, what was drawn). The images
    keep their dtype."""
    b, h, w, _ = images.shape
    k_apply, k_lam, k_perm, k_row, k_col = jax.random.split(key, 5)
    dtype = jnp.result_type(float)
    applied = jax.random.uniform(k_apply, (), dtype) < prob
    lam_drawn = jax.random.beta(k_lam, beta, beta, (), dtype)
    perm = jax.random.permutation(k_perm, b)
    center = (jax.random.randint(k_row, (), 0, h), jax.random.randint(k_col, (), 0, w))
    box = cut_box(lam_drawn, *center, h, w)
    inside = box_mask(box, h, w) & applied
    mixed_images = jnp.where(inside[None, :, :, None], images[perm], images)
    lam = jnp.where(applied, kept_fraction(box, h, w), 1.0).astype(dtype)
    dist = label_distribution(labels, num_classes)
    mixed_labels = lam * dist + (1.0 - lam) * dist[perm]
    return mixed_images, mixed_labels, Draw(applied, lam_drawn, lam, perm, center, box)


def transform(key, batch: dict, hp: CutMixHparams, *, train: bool,
              num_classes: int | None) -> dict:
    """Pastes the box into "image" and makes "label" the (B, K) mixed class distributions."""
    if not train:
        return batch
    if not num_classes:
        raise ValueError("cutmix mixes labels into class distributions and needs the class "
                         "count: build the objective with build_objective(cfg, ...) or "
                         "compose_objective(..., num_classes=K)")
    images, labels, _ = cutmix(key, batch["image"], batch["label"], num_classes=num_classes,
                               beta=hp.beta, prob=hp.prob)
    return {**batch, "image": images, "label": labels}


METHOD = Method(name=NAME, hparams=CutMixHparams, transform=transform)
