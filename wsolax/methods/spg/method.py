"""SPG as a `Method`: selected by placing its tap with `config.model.inserts` at the two stages
whose features the B branches read (its head, forward and loss come with it); hyperparameters
`SPGHparams` (`config.model.methods.spg`).

Defaults are the CVPR'20 benchmark's (clovaai/wsolevaluation): the thresholds are its
`config.py` `--spg_threshold_{1h,1l,2h,2l,3h,3l}` defaults; `mask_size` (224), `min_foreground`
(30 px) and `fallback_ratio` (0.7) are literals of its `wsol/method/spg.py` (`nn.Upsample(size=
(224, 224))`, `mask_fg`'s `< 30` and `max * 0.7`). The widths are architecture: `b_features`
(SPG_B_1a / 2a / shared) 512 as its VggSpg and InceptionSpg (ResNetSpg: 1024), `c_features`
(SPG_C) 512 on all three, `a3_features` the convs between the backbone and the class conv (VGG16
SPG_A_3: (512, 512), InceptionV3 SPG_A3_1b / 2b: (1024, 1024), ResNet50: none) and `dropout` the
rate around them (InceptionV3's `F.dropout(..., 0.5)`, else 0). Its placements per backbone:
VGG16 ``pool4`` and ``conv5_3``, ResNet50 ``layer3_0`` and ``layer3``, InceptionV3 ``extra_pool``
and ``Mixed_6d`` (wsolax/weights/wsolevaluation_spg.py lists them).

Loss (`get_loss`, used by its main.py for 'spg'): CE(logits) + BCE(B2 | CAM attention) +
BCE(B1 | sigmoid(B2)) + BCE(C | fused attention), all weights 1 (masks.py). Training reads the
attention of the ground-truth class (`self.model(images, target)`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

from wsolax.methods.api import Method, require
from wsolax.methods.spg.masks import spg_losses
from wsolax.methods.spg.model import SPGHead, SPGTap, spg_apply

NAME = "spg"

# The benchmark's SPG models per wsolax backbone: the stages its B1 and B2 branches read (in
# forward order) and the hyperparameters its architecture fixes (wsol/vgg.py VggSpg,
# wsol/resnet.py ResNetSpg, wsol/inception.py InceptionSpg; thresholds: its defaults).
BENCHMARK_STAGES = {
    "vgg16_gap": ("pool4", "conv5_3"),  # after the 3x3/2 pool behind SPG_A_1; SPG_A_2's output
    "resnet50": ("layer3_0", "layer3"),  # SPG_A1 (layer3's first block); SPG_A2 (the rest)
    "inception_v3": ("extra_pool", "Mixed_6d"),  # x after Mixed_5d + pool; x before Mixed_6e
}
BENCHMARK_HPARAMS = {
    "vgg16_gap": {"b_features": 512, "c_features": 512, "a3_features": (512, 512),
                  "dropout": 0.0},
    "resnet50": {"b_features": 1024, "c_features": 512, "a3_features": (), "dropout": 0.0},
    "inception_v3": {"b_features": 512, "c_features": 512, "a3_features": (1024, 1024),
                     "dropout": 0.5},
}


@dataclasses.dataclass(frozen=True)
class SPGHparams:
    # (high, low) pairs: B2's mask from the CAM attention, B1's from sigmoid(B2), C's from the
    # fused attention; foreground strictly above high, background strictly below low.
    threshold_1h: float = 0.7
    threshold_1l: float = 0.01
    threshold_2h: float = 0.5
    threshold_2l: float = 0.05
    threshold_3h: float = 0.7
    threshold_3l: float = 0.1
    mask_size: int = 224  # px: maps are upsampled to mask_size x mask_size before thresholding
    min_foreground: int = 30  # px (at mask_size): fewer -> the fallback threshold
    fallback_ratio: float = 0.7  # x the map's maximum
    b_features: int = 512
    c_features: int = 512
    a3_features: tuple[int, ...] = ()
    dropout: float = 0.0

    def __post_init__(self):
        for i in (1, 2, 3):
            high, low = getattr(self, f"threshold_{i}h"), getattr(self, f"threshold_{i}l")
            require(0 <= low <= high <= 1, NAME, f"threshold_{i}l",
                    f"needs 0 <= threshold_{i}l <= threshold_{i}h <= 1, got {low} and {high}")
        require(self.mask_size >= 1, NAME, "mask_size", "must be >= 1")
        require(self.min_foreground >= 0, NAME, "min_foreground", "must be >= 0")
        require(0 < self.fallback_ratio <= 1, NAME, "fallback_ratio", "must be in (0, 1]")
        require(self.b_features >= 1, NAME, "b_features", "must be >= 1")
        require(self.c_features >= 1, NAME, "c_features", "must be >= 1")
        widths = tuple(self.a3_features)
        require(all(int(f) >= 1 for f in widths), NAME, "a3_features",
                f"must be positive widths, got {self.a3_features!r}")
        object.__setattr__(self, "a3_features", tuple(int(f) for f in widths))
        require(0 <= self.dropout < 1, NAME, "dropout", "must be in [0, 1)")


def layer(hp: SPGHparams, dtype):
    return functools.partial(SPGTap, features=hp.b_features, dtype=dtype)


def head(hp: SPGHparams, num_classes: int, dtype):
    return SPGHead(num_classes=num_classes, b_features=hp.b_features, c_features=hp.c_features,
                   a3_features=hp.a3_features, dropout=hp.dropout, dtype=dtype)


def forward(model, variables, batch: dict, hp: SPGHparams, *, rngs: dict):
    del hp
    return spg_apply(model, variables, batch["image"], train=True, rngs=rngs)


def loss(hp: SPGHparams, steps_per_epoch: int):
    del steps_per_epoch  # no schedule

    def terms(out: dict, batch: dict, step):
        del step
        labels = batch["label"]
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError("SPG's attention is the CAM of each image's class: it needs class "
                             "indices, not label distributions (a label-mixing transform)")
        loss_b2, loss_b1, loss_c = spg_losses(out, labels, hp)
        metrics = {"loss_spg_b2": loss_b2, "loss_spg_b1": loss_b1, "loss_spg_c": loss_c}
        return (loss_b2, loss_b1, loss_c), metrics

    return terms


METHOD = Method(name=NAME, hparams=SPGHparams, layer=layer, head=head, forward=forward,
                loss=loss)
