"""ACoL (Zhang et al., CVPR'18) on the embedded dataset: the CAM baseline's tiny backbone and
schedule, with ACoL's two classifier branches on its last map (8x8 at the 64 px crops).

Erasing threshold 0.7 (the CVPR'20 benchmark's `--acol_threshold` default); it applies to the
min-max normalised map, so it has no unit and needs no scaling to 64 px crops (no ACoL
hyperparameter is in pixels). The branches' width is the tiny backbone's own last width (128
channels at the default width 16) instead of the benchmark's 1024: 1024-channel 3x3 convs on the
tiny model would cost ~8x the CAM baseline's step and break its few-minutes CPU budget.

Variants (comma-separated): runlocal, finetune (as synthetic_cam.py), and
  threshold=T   another erasing threshold (the paper's delta, e.g. 0.6 or 0.9)
"""

import synthetic_cam

from wsolax.config import arg_suffix, parse_arg


def get_config(variant: str | None = None):
    opts = parse_arg(variant, synthetic_cam.BASE_TOKENS + ("threshold",))
    c = synthetic_cam.get_config(synthetic_cam.base_variant(opts))
    c.name = "synthetic_acol"
    c.workdir = "runs/synthetic_acol" + arg_suffix(variant)
    c.model.methods.acol = {"threshold": float(opts.get("threshold", 0.7)),
                            "features": 8 * c.model.width}
    return c
