"""CutMix (Yun et al., ICCV'19) on the embedded dataset, as the CVPR'20 benchmark's code runs it
(wsolax.methods.cutmix): the CAM baseline's tiny backbone and schedule, nothing inserted, a box of
another training image pasted into every image of the batch and the labels mixed by area
(evaluation: the plain CAM model).

The benchmark's defaults, none of them in pixels (the box is a fraction of the image, so nothing is
rescaled for the 64 px crops): beta 1.0 (`--cutmix_beta`: lam uniform) and mixing probability 1.0
(`--cutmix_prob`: every batch).

Variants (comma-separated, e.g. `synthetic_cutmix.py:runlocal,prob=0.5`):
  runlocal, finetune, finegrained, scratch   as synthetic_cam.py
  beta=B     lam ~ Beta(B, B)
  prob=P     the probability that a batch is mixed
"""

import synthetic_cam

from wsolax.config import arg_suffix, parse_arg


def get_config(variant: str | None = None):
    opts = parse_arg(variant, synthetic_cam.BASE_TOKENS + ("beta", "prob"))
    c = synthetic_cam.get_config(synthetic_cam.base_variant(opts))
    c.name = "synthetic_cutmix"
    c.workdir = "runs/synthetic_cutmix" + arg_suffix(variant)
    c.model.methods.cutmix = {
        "beta": float(opts.get("beta") or 1.0),
        "prob": float(opts.get("prob") or 1.0),
    }
    return c
