"""What the train step minimises, composed from the methods a config selects (no method is named
here): their transforms change the batch, the model runs (a method's forward if one has it), and
their loss terms are added to the cross-entropy of the logits.

Randomness: with no transform the step's key is the model's `dropout` stream, as in plain
classification; with transforms it is split into (transforms, dropout), the transforms' part
split again per transform when there are several.

Labels: every transform receives the class count (`num_classes`, the config's data.num_classes),
so a label-mixing transform (CutMix) can return class distributions (B, K) that the base
cross-entropy takes as they are. The train step's accuracy (wsolax.training.step) is measured
against the batch it was given, i.e. the original integer labels before any transform, as the
CVPR'20 benchmark's main.py measures CutMix's training accuracy against `target`.
"""

from __future__ import annotations

import jax
import ml_collections

from wsolax.registry import Selected, selected_methods
from wsolax.training.step import classification_loss, classification_objective


def build_objective(cfg: ml_collections.ConfigDict, steps_per_epoch: int = 0):
    """`steps_per_epoch` converts epoch-valued loss schedules (e.g. Where to Look's
    fusion_start_epochs); a method that needs it refuses to build without it. The transforms get
    `cfg.data.num_classes`."""
    return compose_objective(selected_methods(cfg.model), steps_per_epoch, cfg.data.num_classes)


def compose_objective(selected: tuple[Selected, ...], steps_per_epoch: int = 0,
                      num_classes: int | None = None):
    """`num_classes` is passed to every transform (None: unknown; a transform that needs it,
    CutMix, refuses to run without it)."""
    transforms = [(s.method.transform, s.hparams) for s in selected if s.method.transform]
    forwards = [s for s in selected if s.method.forward]
    losses = [s.method.loss(s.hparams, steps_per_epoch) for s in selected if s.method.loss]
    if len(forwards) > 1:
        raise ValueError(f"methods {[s.method.name for s in forwards]} each define the training "
                         "forward; at most one may")
    if not (transforms or forwards or losses):
        return classification_objective

    def objective(model, variables, batch, key, step=0):
        if transforms:
            transform_key, key = jax.random.split(key)
            keys = ([transform_key] if len(transforms) == 1
                    else list(jax.random.split(transform_key, len(transforms))))
            for (transform, hparams), k in zip(transforms, keys):
                batch = transform(k, batch, hparams, train=True, num_classes=num_classes)
        rngs = {"dropout": key}
        if forwards:
            out, updates = forwards[0].method.forward(model, variables, batch, forwards[0].hparams,
                                                      rngs=rngs)
        else:
            out, updates = model.apply(variables, batch["image"], train=True, rngs=rngs,
                                       mutable=["batch_stats"])
        loss, metrics = classification_loss(out["logits"], batch["label"]), {}
        for terms_of in losses:
            terms, extra = terms_of(out, batch, step)
            for term in terms:  # in order: the sum is the same expression as written by hand
                loss = loss + term
            metrics.update(extra)
        aux = {"logits": out["logits"]}
        if metrics:
            aux["metrics"] = metrics
        return loss, (aux, updates)

    return objective
