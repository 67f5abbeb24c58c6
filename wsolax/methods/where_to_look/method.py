"""Where to Look as a `Method`: selected by `config.model.methods.where_to_look` (`{}`: the paper's
settings), hyperparameters `WhereToLookHparams`.

Hooks: the complementary pair is a transform (made on device from the step's key), the two-branch
head replaces the CAM head, the forward runs both views through the shared backbone
(`WSOLModel.pair`), and the loss adds the second view's cross-entropy and beta x the fusion loss to
the base cross-entropy of the X view: CE(x) + CE(x~) + beta L_fuse (Eq. 15).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

from wsolax.methods.api import Method, require
from wsolax.methods.where_to_look.attention import CAAM_SOFTMAX
from wsolax.methods.where_to_look.head import (
    AGG_ACTIVATIONS, BRANCHES, EVAL_INPUTS, WhereToLookHead)
from wsolax.methods.where_to_look.loss import REDUCTIONS, fusion_loss, fusion_weight_at
from wsolax.methods.where_to_look.pair import complementary_pair

NAME = "where_to_look"


@dataclasses.dataclass(frozen=True)
class WhereToLookHparams:
    """The pair (Hide-and-Seek grid; one patch size drawn per image per step from patch_sizes: the
    paper's "Mixed" at 224 px), the fusion-loss weight beta, the aggregation conv (0 features: the
    backbone's width) and which branch's classifier gives the test CAM.

    Readings where the paper is open (docs/methods.md, "Readings"; the second value of each is the
    earlier wsolax reading, `readings="v1"` in the embedded benchmark's configs):
    fusion_reduction "mean" | "sum", caam_softmax "summed_index" | "row", agg_activation
    "none" | "relu", eval_input "sum" | "single"."""

    patch_sizes: tuple[int, ...] = (16, 32, 44, 56)
    hide_prob: float = 0.5
    fill: float = 0.0  # normalised units: 0 is the dataset mean HaS hides with
    fusion_weight: float = 50.0
    # Not in the paper (constant beta from ImageNet weights): beta stays 0 for fusion_start_epochs,
    # then ramps up linearly over fusion_warmup_epochs; for training from scratch.
    fusion_start_epochs: float = 0.0
    fusion_warmup_epochs: float = 0.0
    agg_features: int = 0
    agg_kernel: int = 3
    test_branch: str = "x"
    share_classifier: bool = False
    fusion_reduction: str = "mean"  # attention transfer's at_loss: mean over batch and positions
    caam_softmax: str = "summed_index"  # over k, the index Eq. 4 sums
    agg_activation: str = "none"  # Eq. 9: conv(F^c + F^s), no activation
    eval_input: str = "sum"  # test: conv(F + F), the training path with the attention terms off

    def __post_init__(self):
        sizes = tuple(self.patch_sizes)
        require(len(sizes) >= 1 and all(int(p) >= 1 for p in sizes), NAME, "patch_sizes",
                f"must be positive sizes, got {self.patch_sizes!r}")
        object.__setattr__(self, "patch_sizes", tuple(int(p) for p in sizes))
        require(0 <= self.hide_prob <= 1, NAME, "hide_prob", "must be in [0, 1]")
        require(self.fusion_weight >= 0, NAME, "fusion_weight", "must be >= 0")
        require(self.fusion_start_epochs >= 0, NAME, "fusion_start_epochs", "must be >= 0")
        require(self.fusion_warmup_epochs >= 0, NAME, "fusion_warmup_epochs", "must be >= 0")
        require(self.agg_features >= 0, NAME, "agg_features", "must be >= 0")
        require(self.agg_kernel >= 1, NAME, "agg_kernel", "must be >= 1")
        require(self.test_branch in BRANCHES, NAME, "test_branch",
                f"must be 'x' or 'x_tilde', got {self.test_branch!r}")
        for field, allowed in (("fusion_reduction", REDUCTIONS), ("caam_softmax", CAAM_SOFTMAX),
                               ("agg_activation", AGG_ACTIVATIONS), ("eval_input", EVAL_INPUTS)):
            require(getattr(self, field) in allowed, NAME, field,
                    f"must be one of {allowed}, got {getattr(self, field)!r}")


def head(hp: WhereToLookHparams, num_classes: int, dtype):
    return WhereToLookHead(num_classes=num_classes, agg_features=hp.agg_features,
                           agg_kernel=hp.agg_kernel, test_branch=hp.test_branch,
                           share_classifier=hp.share_classifier, dtype=dtype,
                           caam_softmax=hp.caam_softmax, agg_activation=hp.agg_activation,
                           eval_input=hp.eval_input)


def transform(key, batch: dict, hp: WhereToLookHparams, *, train: bool,
              num_classes: int | None) -> dict:
    """X in "image" (hides the drawn cells), X~ in "image_tilde" (hides the rest)."""
    del num_classes  # the labels stay class indices
    if not train:
        return batch
    x, x_tilde, _ = complementary_pair(key, batch["image"], patch_sizes=hp.patch_sizes,
                                       hide_prob=hp.hide_prob, fill=hp.fill)
    return {**batch, "image": x, "image_tilde": x_tilde}


def forward(model, variables, batch: dict, hp: WhereToLookHparams, *, rngs: dict):
    del hp
    return model.apply(variables, batch["image"], batch["image_tilde"], train=True,
                       cam_classes=batch["label"][:, None], method="pair", rngs=rngs,
                       mutable=["batch_stats"])


def loss(hp: WhereToLookHparams, steps_per_epoch: int):
    """The terms after CE(x): CE(x~), then beta L_fuse, beta on its (optional) schedule."""
    if (hp.fusion_start_epochs > 0 or hp.fusion_warmup_epochs > 0) and steps_per_epoch <= 0:
        raise ValueError(f"model.methods.{NAME}.fusion_start_epochs / fusion_warmup_epochs need "
                         "build_objective(cfg, steps_per_epoch)")
    start = round(hp.fusion_start_epochs * steps_per_epoch)
    warmup = round(hp.fusion_warmup_epochs * steps_per_epoch)

    def terms(out: dict, batch: dict, step):
        labels = batch["label"]
        ce_x = optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
        ce_x_tilde = optax.softmax_cross_entropy_with_integer_labels(
            out["logits_tilde"], labels).mean()
        fuse = fusion_loss(out["cams"][..., 0], out["cams_tilde"][..., 0], hp.fusion_reduction)
        beta = fusion_weight_at(step, hp.fusion_weight, start, warmup)
        metrics = {"loss_ce_x": ce_x, "loss_ce_x_tilde": ce_x_tilde, "loss_fusion": fuse,
                   "fusion_weight": beta,
                   "accuracy_x_tilde": jnp.mean(jnp.argmax(out["logits_tilde"], -1) == labels)}
        return (ce_x_tilde, beta * fuse), metrics

    return terms


METHOD = Method(name=NAME, hparams=WhereToLookHparams, head=head, transform=transform,
                forward=forward, loss=loss, eval_readings=("eval_input", "test_branch"))
