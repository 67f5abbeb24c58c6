"""Jitted CAM extraction: images -> logits, top-k and the CAMs of the GT and top-1 classes.

By default (`scoremap="exact"`) only the raw low-resolution CAMs leave the device (14x14 per map
for a stride-16 backbone): the host turns them into score maps exactly as the reference does, in
float64 (`reference_scoremap.reference_scoremaps`).  `scoremap="device_float32"` also resizes and
normalises on device in float32, sharded over the batch like the train step -- faster, but not
bit-identical to the reference (see `scoremap.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wsolax.evaluation.reference_scoremap import reference_scoremaps
from wsolax.localization.device_scoremap import normalize_scoremaps, resize_cams
from wsolax.precision import widen
from wsolax import sharding


def _head_cams(module, features, classes):
    return module.head(features, classes)


SCOREMAP_MODES = ("exact", "device_float32")


def make_cam_extractor(model, mesh, out_hw: tuple[int, int], top_k: int = 5,
                       scoremap: str = "exact"):
    """Returns jitted `extract(variables, images, labels) -> dict` (all outputs batch-sharded).

    `cam_gt` / `cam_top1` are the (B, h, w) CAMs of the GT and top-1 classes, at least float32
    (widening is exact, so the host's float64 cast sees the network's values).  With
    `scoremap="device_float32"` the outputs also hold `scoremap_gt` / `scoremap_top1`, (B, H, W)
    float32 in [0, 1] at `out_hw`.
    """
    if scoremap not in SCOREMAP_MODES:
        raise ValueError(f"scoremap must be one of {SCOREMAP_MODES}, got {scoremap!r}")

    def extract(variables, images, labels):
        out = model.apply(variables, images, train=False, cam_classes=labels[:, None])
        logits = out["logits"]
        top1 = jnp.argmax(logits, axis=-1)
        k = min(top_k, logits.shape[-1])
        topk = jax.lax.top_k(logits, k)[1]
        _, cams_top1 = model.apply(variables, out["features"], top1[:, None], method=_head_cams)
        cams = jnp.concatenate([out["cams"], cams_top1], axis=-1)  # (B, h, w, 2)
        cams = widen(jnp.moveaxis(cams, -1, 1))  # (B, 2, h, w)
        out = {"logits": logits, "top1": top1, "topk": topk,
               "cam_gt": cams[:, 0], "cam_top1": cams[:, 1]}
        if scoremap == "device_float32":
            b, _, h, w = cams.shape
            maps = normalize_scoremaps(resize_cams(cams.reshape(b * 2, h, w), out_hw))
            maps = maps.reshape(b, 2, *out_hw)
            out.update(scoremap_gt=maps[:, 0], scoremap_top1=maps[:, 1])
        return out

    repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    return jax.jit(extract, in_shardings=(repl, data, data), out_shardings=data)


def gt_scoremaps(out: dict, scoremap: str, out_hw: tuple[int, int]) -> np.ndarray:
    """The GT-class score maps the evaluator gets, from an extractor's host-side outputs.

    "exact": from the raw CAMs, the reference's float64 resize and normalisation (float64 maps);
    "device_float32": the maps the device made (the extractor must have been built that way).
    """
    if scoremap == "exact":
        return reference_scoremaps(out["cam_gt"], out_hw)
    if scoremap == "device_float32":
        if "scoremap_gt" not in out:
            raise ValueError("eval.scoremap='device_float32' but the CAM extractor was built "
                             "with scoremap='exact'; build it with scoremap=cfg.eval.scoremap")
        return np.asarray(out["scoremap_gt"])
    raise ValueError(f"scoremap must be one of {SCOREMAP_MODES}, got {scoremap!r}")
