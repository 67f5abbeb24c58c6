"""Convert a user's ImageNet weights file for the model a config builds, and save it once."""

from __future__ import annotations

from pathlib import Path

import jax
import ml_collections

from wsolax.registry import build_model
from wsolax.models.wsol_model import init_key
from wsolax.weights.convert import ConversionReport, WeightError, convert_torch_state_dict
from wsolax.weights.sources import load_state_dict
from wsolax.weights.store import save_converted


def init_variables(cfg: ml_collections.ConfigDict) -> dict:
    model = build_model(cfg)
    shape = (1, cfg.data.crop_size, cfg.data.crop_size, 3)
    init = jax.jit(lambda key: model.init({"params": key, "dropout": key},
                                          jax.numpy.zeros(shape), train=False))
    return jax.device_get(init(init_key(cfg.seed)))


def convert_for_config(cfg: ml_collections.ConfigDict, weights: str | Path,
                       out: str | Path | None = None, *, allow_pickle: bool = False,
                       strict: bool = True, layout: str = "torchvision"
                       ) -> tuple[Path, ConversionReport]:
    """Read `weights`, map it onto `cfg`'s model, save to `out` (default `cfg.model.init_from`).

    layout: the file's names (wsolax.weights.layouts): 'torchvision' ImageNet weights, or
    'wsolevaluation' for a whole model trained by the CVPR'20 benchmark's code.
    """
    from wsolax.weights.layouts import WHOLE_MODEL, check_whole_model, torch_name_for

    torch_name = torch_name_for(cfg, layout)
    if layout in WHOLE_MODEL and not out:  # model.init_from names the ImageNet weights file
        raise WeightError(f"pass --out for a whole model in the {layout} layout")
    out = out or cfg.model.init_from
    if not out:
        raise WeightError("no output path: pass --out or set config.model.init_from")
    state_dict = load_state_dict(weights, allow_pickle=allow_pickle)
    variables, report = convert_torch_state_dict(state_dict, init_variables(cfg),
                                                 torch_name, strict=strict)
    if strict:
        check_whole_model(report, layout)
    path = save_converted(variables, out, backbone=cfg.model.backbone, source=str(weights),
                          summary=report.summary())
    return path, report
