"""ADL on ResNet50-SE, CUB-200-2011 (Choe & Shim CVPR'19).

The paper's ResNet50 row is ResNet50-SE (SE blocks plugged in, Sec. 4); use
`--config.model.backbone=resnet50` for plain ResNet50 (the CVPR'20 benchmark's). ADL after layer3's
first block, layer4's first block and layer4's end (last strided conv set to stride 1 -> 14x14),
drop rate 0.75, gamma 0.9 for ResNet: placement `adl_paper` (wsolax.methods.placements; the
benchmark's `wsolevaluation` placement is the same on ResNet50, see configs/wsolevaluation.py).
Expected (Table 3, CUB): Top-1 Loc 62.29, Top-1 Clas 80.34 (CAM: 42.72 / 80.65).
Training settings (none in the paper): configs/_paper.py.
"""

import _paper


def get_config():
    from wsolax.methods.placements import paper_inserts

    placement = "adl_paper"  # the source this config follows (gamma 0.9: the ADL paper's)
    return _paper.paper_config(
        "cub_adl_resnet50", "cub", "se_resnet50",
        inserts=paper_inserts("adl", "se_resnet50", placement),
        methods={"adl": {"drop_rate": 0.75, "gamma": 0.9}})
