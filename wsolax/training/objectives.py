"""Which objective the train step minimises, from the config.

One-view models (CAM, and CAM with attention-dropout layers inserted) minimise cross-entropy;
Where to Look (`model.head = "where_to_look"`) makes its complementary pair inside the step and
adds the second view's cross-entropy and the fusion loss.
"""

from __future__ import annotations

import ml_collections

from wsolax.training.step import classification_objective


def build_objective(cfg: ml_collections.ConfigDict, steps_per_epoch: int = 0):
    """`steps_per_epoch` converts epoch-valued loss schedules (model.wtl.fusion_*_epochs)."""
    if cfg.model.head == "where_to_look":
        from wsolax.methods.where_to_look import make_objective

        w = cfg.model.wtl
        if (w.fusion_start_epochs > 0 or w.fusion_warmup_epochs > 0) and steps_per_epoch <= 0:
            raise ValueError("model.wtl.fusion_start_epochs / fusion_warmup_epochs need "
                             "build_objective(cfg, steps_per_epoch)")
        return make_objective(patch_sizes=tuple(w.patch_sizes), hide_prob=w.hide_prob,
                              fill=w.fill, fusion_weight=w.fusion_weight,
                              fusion_start_step=round(w.fusion_start_epochs * steps_per_epoch),
                              fusion_warmup_steps=round(w.fusion_warmup_epochs * steps_per_epoch))
    return classification_objective
