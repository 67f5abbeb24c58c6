"""ACoL: Adversarial Complementary Learning (Zhang et al., CVPR 2018, arXiv:1804.06962), as the
CVPR'20 benchmark's code builds it (Choe et al., "Evaluating WSOL Methods Right",
clovaai/wsolevaluation: `wsol/method/acol.py` AcolBase, `wsol/method/util.py`, `main.py`,
`inference.py`, `config.py`).

Two classifier branches on the backbone's features (paper Sec. 3.2, Fig. 2; `AcolBase`):

* classifier A maps the features to per-class maps (3x3 conv -> ReLU -> 3x3 conv -> ReLU -> 1x1
  conv to the classes, every conv with bias; 1024 channels on VGG16, ResNet50 and InceptionV3 alike
  in `VggAcol` / `ResNetAcol` / `InceptionAcol`); its logits are the maps' spatial mean
  (`AdaptiveAvgPool2d(1)`).
* The attention is A's map of one class per image, detached and min-max normalised over the
  positions (`get_attention` -> `normalize_tensor`: (x - min) / (max - min), no epsilon). Positions
  where it is >= the threshold (`torch.ge`, so a position exactly at the threshold is erased) are
  set to 0 in the features (`_erase_attention`), the same mask for every channel.
* classifier B (same architecture, own weights) sees the erased features; its logits are its
  maps' mean.
* Which class erases: the labels given to the model, else A's argmax (`_acol_logits`: `labels =
  logits.argmax(dim=1) if labels is None`). Training passes the ground truth (`main.py`:
  `self.model(images, target)`).
* Loss: CE(logits A) + CE(logits B) (`acol.get_loss`, used by `main.py` for 'acol'); the logits the
  train accuracy and the test classification use are A's (`output_dict['logits']`).
* Test CAM (`return_cam` in each architecture): both branches' maps normalised as above, their
  element-wise max, the map of the requested class -- with the erasing done by that same class
  (`inference.py` calls `model(images, targets, return_cam=True)`, so the class that erases is the
  class whose CAM is read). Here the CAM of every requested class (`cam_classes`) is that map, so
  each requested class runs classifier B once on its own erased features; with `cam_classes=None`
  every class does (K passes of B -- evaluation always requests its classes).
* Threshold 0.7 (`config.py --acol_threshold`); the paper's delta is a hyperparameter too.

A map that is constant over the positions normalises to 0/0 = NaN in the reference: `torch.ge` is
False there (nothing erased), and a NaN test CAM becomes an all-zero score map
(`inference.normalize_scoremap`). wsolax erases nothing for such a map and returns a CAM of zeros
(a constant map, which the same normalisation also turns into zeros), so no NaN ever leaves the
model. Normalisation, threshold and CAMs run in float32 (float64 in a float64 model) whatever the
compute dtype.

Initialisation (`wsol/util.py initialize_weights`, biases 0): Xavier-uniform convs in VggAcol and
InceptionAcol (`init="xavier"`, default), Kaiming-normal fan-out in ResNetAcol (`init="he"`).
Backbone features per architecture (the backbones' docstrings): VGG16 with the 'acol' pooling and
its 3x3 average pool, no conv6; ResNet50's plain layer4; InceptionV3's Mixed_6e, without the two
new convs of its CAM variant.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from wsolax.methods.api import Method, require
from wsolax.models.layers import pad
from wsolax.precision import widen

NAME = "acol"
INITS = ("xavier", "he")


def normalize_maps(maps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(normalised, valid) for (B, h, w, n) maps: each (image, map) min-max normalised over the
    positions as `normalize_tensor` does; valid (B, 1, 1, n) is False where a map is constant
    (the reference's 0/0), whose normalised values are then 0."""
    maps = widen(maps)
    lo = jnp.min(maps, axis=(1, 2), keepdims=True)
    hi = jnp.max(maps, axis=(1, 2), keepdims=True)
    valid = hi > lo
    span = jnp.where(valid, hi - lo, 1)
    return jnp.where(valid, (maps - lo) / span, 0), valid


def erase_mask(attention: jax.Array, threshold: float) -> jax.Array:
    """(B, h, w, n) float 0/1: 0 where A's normalised map of the erasing class is >= threshold
    (`_erase_attention`); a constant map erases nothing (NaN >= threshold is False there)."""
    normalized, valid = normalize_maps(jax.lax.stop_gradient(attention))
    return jnp.where(valid & (normalized >= threshold), 0, 1).astype(normalized.dtype)


def _select(maps: jax.Array, classes: jax.Array) -> jax.Array:
    """maps (B, h, w, K), classes (B, n) -> (B, h, w, n)."""
    return jnp.take_along_axis(maps, classes[:, None, None, :], axis=-1)


def erase(features: jax.Array, maps_a: jax.Array, classes: jax.Array,
          threshold: float) -> jax.Array:
    """Features erased by each image's classes: (B, h, w, C), (B, h, w, K), (B, n) ->
    (B, n, h, w, C), copy j erased where A's map of classes[:, j] is at or above the threshold."""
    mask = erase_mask(_select(maps_a, classes), threshold)  # (B, h, w, n)
    mask = jnp.moveaxis(mask, -1, 1)[..., None].astype(features.dtype)  # (B, n, h, w, 1)
    return features[:, None] * mask


def fused_cams(maps_a: jax.Array, maps_b: jax.Array) -> jax.Array:
    """max(normalised A, normalised B) per map (the reference's `return_cam`), both (B, h, w, n);
    0 where either map is constant (the reference's NaN, scored as an all-zero map)."""
    norm_a, valid_a = normalize_maps(maps_a)
    norm_b, valid_b = normalize_maps(maps_b)
    return jnp.where(valid_a & valid_b, jnp.maximum(norm_a, norm_b), 0)


class Branch(nn.Module):
    """One classifier of `AcolBase`: 3x3 conv -> ReLU -> 3x3 conv -> ReLU -> 1x1 conv to the
    classes (torch `classifier_X.0`, `.2`, `.4`). Returns the class maps (B, h, w, K)."""

    num_classes: int
    features: int = 1024
    conv_init: str = "xavier"  # not `init`: that would hide Module.init
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel_init = (nn.initializers.xavier_uniform() if self.conv_init == "xavier" else
                       nn.initializers.variance_scaling(2.0, "fan_out", "normal"))

        def conv(name, features, k):
            return nn.Conv(features, (k, k), padding=pad(k // 2), dtype=self.dtype,
                           kernel_init=kernel_init, bias_init=nn.initializers.zeros, name=name)

        x = nn.relu(conv("conv1", self.features, 3)(x))
        x = nn.relu(conv("conv2", self.features, 3)(x))
        return conv("classes", self.num_classes, 1)(x)


def _logits(maps: jax.Array) -> jax.Array:
    return jnp.mean(widen(maps), axis=(1, 2))


class AcolHead(nn.Module):
    """The two branches. `__call__` is evaluation: A's logits and the test CAMs; `branches` is the
    reference's `_acol_logits` (training, with the labels that erase)."""

    num_classes: int
    threshold: float = 0.7
    features: int = 1024
    conv_init: str = "xavier"  # not `init`: that would hide Module.init
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        kw = dict(num_classes=self.num_classes, features=self.features, conv_init=self.conv_init,
                  dtype=self.dtype)
        self.classifier_A = Branch(**kw)
        self.classifier_B = Branch(**kw)

    def branches(self, features: jax.Array, labels: jax.Array | None = None) -> dict:
        """{"logits": A's, "logits_b", "maps_a", "maps_b"}: B on the features erased by `labels`
        (B,) int, or by A's argmax when None."""
        maps_a = self.classifier_A(features)
        logits = _logits(maps_a)
        if labels is None:
            labels = jnp.argmax(logits, axis=-1)
        if labels.ndim != 1 or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(f"{NAME} erases with class indices (B,); got labels of shape "
                             f"{labels.shape} and dtype {labels.dtype} (a label-mixing transform?)")
        erased = erase(features, maps_a, labels[:, None], self.threshold)[:, 0]
        maps_b = self.classifier_B(erased)
        return {"logits": logits, "logits_b": _logits(maps_b), "maps_a": maps_a,
                "maps_b": maps_b}

    def __call__(self, features: jax.Array, cam_classes: jax.Array | None = None):
        if self.is_initializing():  # one erasing pass creates B's parameters (not K of them)
            out = self.branches(features)
            return out["logits"], fused_cams(out["maps_a"], out["maps_b"])
        maps_a = self.classifier_A(features)
        b = features.shape[0]
        classes = (jnp.broadcast_to(jnp.arange(self.num_classes), (b, self.num_classes))
                   if cam_classes is None else cam_classes)
        n = classes.shape[1]
        erased = erase(features, maps_a, classes, self.threshold)  # (B, n, h, w, C)
        maps_b = self.classifier_B(erased.reshape(b * n, *erased.shape[2:]))
        maps_b = maps_b.reshape(b, n, *maps_b.shape[1:])  # (B, n, h, w, K)
        own_b = jnp.take_along_axis(maps_b, classes[:, :, None, None, None], axis=-1)[..., 0]
        cams = fused_cams(_select(maps_a, classes), jnp.moveaxis(own_b, 1, -1))
        return _logits(maps_a), cams


@dataclasses.dataclass(frozen=True)
class AcolHparams:
    """threshold: the erasing threshold on the normalised map (config.py `--acol_threshold` 0.7);
    features: the branches' conv width (1024 in all three benchmark architectures); init: the
    branches' conv initialisation, "xavier" (VggAcol, InceptionAcol) or "he" (ResNetAcol)."""

    threshold: float = 0.7
    features: int = 1024
    init: str = "xavier"

    def __post_init__(self):
        require(0 <= self.threshold <= 1, NAME, "threshold",
                f"must be in [0, 1] (the normalised map's range), got {self.threshold!r}")
        require(self.features >= 1, NAME, "features", "must be >= 1")
        require(self.init in INITS, NAME, "init", f"must be one of {INITS}, got {self.init!r}")


def head(hp: AcolHparams, num_classes: int, dtype):
    return AcolHead(num_classes=num_classes, threshold=hp.threshold, features=hp.features,
                    conv_init=hp.init, dtype=dtype)


def _train_forward(module, images, labels):
    features = module.backbone(images, train=True)
    return {**module.head.branches(features, labels), "features": features}


def forward(model, variables, batch: dict, hp: AcolHparams, *, rngs: dict):
    """The backbone, then both branches with the ground truth erasing (`main.py`:
    `self.model(images, target)`)."""
    del hp
    return model.apply(variables, batch["image"], batch["label"], method=_train_forward,
                       rngs=rngs, mutable=["batch_stats"])


def loss(hp: AcolHparams, steps_per_epoch: int):
    """The term after CE(A): CE(B) (`acol.get_loss`: the two unweighted cross-entropies)."""
    del hp, steps_per_epoch

    def terms(out: dict, batch: dict, step):
        labels = batch["label"]
        ce_a = optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
        ce_b = optax.softmax_cross_entropy_with_integer_labels(out["logits_b"], labels).mean()
        metrics = {"loss_ce_a": ce_a, "loss_ce_b": ce_b,
                   "accuracy_b": jnp.mean(jnp.argmax(out["logits_b"], -1) == labels)}
        return (ce_b,), metrics

    return terms


METHOD = Method(name=NAME, hparams=AcolHparams, head=head, forward=forward, loss=loss)
