"""ADL (Choe & Shim, CVPR'19) on the embedded dataset: the CAM baseline plus ADL after stage3 and
stage4 of the tiny backbone (the analogue of the paper's "after conv4_3 / pool4 and conv5_3" on
VGG16-GAP). Drop rate 0.75 as in the paper; gamma 0.9 (the paper's ResNet value)."""

import synthetic_cam

from wsolax.config import arg_suffix


def get_config(variant: str | None = None):
    c = synthetic_cam.get_config(variant)  # runlocal, finetune
    c.name = "synthetic_adl"
    c.workdir = "runs/synthetic_adl" + arg_suffix(variant)
    c.model.inserts = (("stage3", "adl"), ("stage4", "adl"))
    c.model.methods.adl = {"drop_rate": 0.75, "gamma": 0.9}
    return c
