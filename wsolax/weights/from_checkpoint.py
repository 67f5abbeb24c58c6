"""Weights from a wsolax training run, saved in the format `model.init_from` reads.

A backbone trained by one run (e.g. CAM on the embedded dataset) becomes the starting point of
another (a WSOL method fine-tuned from it), the way the papers start from ImageNet weights:
`--only backbone` keeps the backbone and leaves every head to start fresh.
"""

from __future__ import annotations

from pathlib import Path

import jax
import ml_collections
from flax import traverse_util

from wsolax import sharding
from wsolax.checkpoint import restore_model
from wsolax.weights.convert import WeightError
from wsolax.weights.store import save_converted

PARTS = ("all", "backbone")


def select_part(variables: dict, part: str) -> dict:
    """`variables` restricted to the backbone's collections' entries ('all': unchanged)."""
    if part not in PARTS:
        raise WeightError(f"unknown part {part!r}; known: {', '.join(PARTS)}")
    if part == "all":
        return variables
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    kept = {k: v for k, v in flat.items() if k.split("/")[1] == "backbone"}
    if not kept:
        raise WeightError("the checkpoint has no backbone variables")
    return traverse_util.unflatten_dict(kept, sep="/")


def export_checkpoint(cfg: ml_collections.ConfigDict, workdir: str | Path, out: str | Path, *,
                      part: str = "all") -> Path:
    """Save the latest checkpoint of the run in `workdir` (trained with `cfg`) to `out`."""
    _, variables, step = restore_model(cfg, workdir, sharding.data_mesh(jax.devices()[:1]))
    variables = select_part(jax.device_get(variables), part)
    return save_converted(variables, out, backbone=cfg.model.backbone,
                          source=f"{Path(workdir)} step {step}",
                          summary=f"{part} of a wsolax checkpoint (config {cfg.name})")
