"""A WSOL model: backbone (with optional inserted layers) + CAM head."""

from __future__ import annotations

import flax.linen as nn
import jax


class WSOLModel(nn.Module):
    """Returns ``{"logits": (B, K), "cams": (B, h, w, K or n), "features": (B, h, w, C)}``.

    `cam_classes` (B, n) int restricts the CAMs to those classes per image (e.g. ground truth and
    top-1), which is what evaluation needs on 1000-class datasets.
    """

    backbone: nn.Module
    head: nn.Module

    def __call__(self, images: jax.Array, *, train: bool, cam_classes: jax.Array | None = None):
        features = self.backbone(images, train=train)
        logits, cams = self.head(features, cam_classes)
        return {"logits": logits, "cams": cams, "features": features}
