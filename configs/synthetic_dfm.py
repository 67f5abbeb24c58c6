"""DFM (Zhou et al., dual-attention focused module) on the embedded dataset: the CAM baseline plus
DFM after stage3 and stage4 of the tiny backbone.

The paper inserts DFM in ResNet50 after conv4_1 (first bottleneck of the conv4 stage) and conv5_3
(last bottleneck of conv5, feeding the CAM head). The tiny backbone only has stage-level hooks, so
conv4_x maps to stage3 (its hook is at the end of the stage, the only point inside that stage) and
conv5_3 to the end of stage4. Hyperparameters: the paper's ResNet50 settings (alpha 0.85, beta 0.95,
omega 0.15, delta 0.6, gamma 0.4, tau 0.7), written out so the run records them; at evaluation
F + F (`eval_output="residual"`), `readings=v1` the identity (configs/_readings.py).
"""

import _readings
import synthetic_cam

from wsolax.config import arg_suffix, parse_arg


def get_config(variant: str | None = None):
    c = synthetic_cam.get_config(variant)  # runlocal, finetune
    c.name = "synthetic_dfm"
    c.workdir = "runs/synthetic_dfm" + arg_suffix(variant)
    c.model.inserts = (("stage3", "dfm"), ("stage4", "dfm"))
    c.model.methods.dfm = {"alpha": 0.85, "beta": 0.95, "omega": 0.15, "delta": 0.6,
                           "gamma": 0.4, "tau": 0.7}
    if synthetic_cam.readings(parse_arg(variant, synthetic_cam.BASE_TOKENS)) == "v1":
        c.model.methods.dfm.update(_readings.DFM_V1)
    return c
