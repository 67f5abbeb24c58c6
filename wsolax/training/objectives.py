"""Which objective the train step minimises, from the config.

One-view models (CAM, and CAM with attention-dropout layers inserted) minimise cross-entropy;
Where to Look (`model.head = "where_to_look"`) makes its complementary pair inside the step and
adds the second view's cross-entropy and the fusion loss.
"""

from __future__ import annotations

import ml_collections

from wsolax.training.step import classification_objective


def build_objective(cfg: ml_collections.ConfigDict):
    if cfg.model.head == "where_to_look":
        from wsolax.methods.where_to_look import make_objective

        w = cfg.model.wtl
        return make_objective(patch_sizes=tuple(w.patch_sizes), hide_prob=w.hide_prob,
                              fill=w.fill, fusion_weight=w.fusion_weight)
    return classification_objective
