"""Jitted CAM extraction: images -> logits, top-k and score maps of the GT and top-1 classes.

Resizing (bicubic, as OpenCV's INTER_CUBIC) and min-max normalisation happen on device, sharded
over the batch like the train step, so only the final score maps travel to the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wsolax.evaluation.scoremap import normalize_scoremaps, resize_cams
from wsolax.training import sharding


def _head_cams(module, features, classes):
    return module.head(features, classes)


def make_cam_extractor(model, mesh, out_hw: tuple[int, int], top_k: int = 5):
    """Returns jitted `extract(variables, images, labels) -> dict` (all outputs batch-sharded).

    `scoremap_gt` / `scoremap_top1` are (B, H, W) float32 in [0, 1] at `out_hw`.
    """

    def extract(variables, images, labels):
        out = model.apply(variables, images, train=False, cam_classes=labels[:, None])
        logits = out["logits"]
        top1 = jnp.argmax(logits, axis=-1)
        k = min(top_k, logits.shape[-1])
        topk = jax.lax.top_k(logits, k)[1]
        _, cams_top1 = model.apply(variables, out["features"], top1[:, None], method=_head_cams)
        cams = jnp.concatenate([out["cams"], cams_top1], axis=-1)  # (B, h, w, 2)
        b, h, w, _ = cams.shape
        maps = jnp.moveaxis(cams, -1, 1).reshape(b * 2, h, w)
        maps = normalize_scoremaps(resize_cams(maps, out_hw)).reshape(b, 2, *out_hw)
        return {"logits": logits, "top1": top1, "topk": topk,
                "scoremap_gt": maps[:, 0], "scoremap_top1": maps[:, 1]}

    repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    return jax.jit(extract, in_shardings=(repl, data, data), out_shardings=data)
