"""SPG (Zhang et al., ECCV'18, as the CVPR'20 benchmark's code builds it) on the embedded dataset:
the CAM baseline's tiny backbone and schedule with SPG's branches laid out as on VGG16-GAP.

On VGG16 the benchmark's B1 reads the input of the last conv block (after pool4) and B2 its
output (conv5_3), then two 3x3 convs (SPG_A_3) feed SPG_C and the 1x1 class conv; here B1 reads
stage3, B2 stage4 (the tiny backbone's last block) and the head's two convs keep stage4's width,
as do the B and C branches (512 = conv5_3's width on VGG16; 8 x width here).

Thresholds: the benchmark's defaults (config.py `--spg_threshold_*`). In pixels, scaled to the
crops (64 px): the maps are upsampled to the crop (spg.py: 224 x 224 = its crop) and the foreground
fallback's 30 px minimum at 224 px becomes 30 x (64 / 224)^2 = 2.4 -> 2 px (both follow
`data.crop_size`, e.g. the 96 px crops of the finegrained variant: 5.5 -> 6 px).

Variants: runlocal, finetune, finegrained (as synthetic_cam.py).
"""

import synthetic_cam

from wsolax.config import arg_suffix


def get_config(variant: str | None = None):
    c = synthetic_cam.get_config(variant)  # runlocal, finetune
    c.name = "synthetic_spg"
    c.workdir = "runs/synthetic_spg" + arg_suffix(variant)
    width = 8 * c.model.width  # stage4's channels
    c.model.inserts = (("stage3", "spg"), ("stage4", "spg"))
    c.model.methods.spg = {
        "mask_size": c.data.crop_size,
        "min_foreground": round(30 * (c.data.crop_size / 224) ** 2),
        "b_features": width, "c_features": width, "a3_features": (width, width),
    }
    return c
