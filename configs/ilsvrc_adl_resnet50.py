"""ADL on ResNet50-SE, ILSVRC 2012 (Choe & Shim CVPR'19).

Placement (`adl_paper`) and hyperparameters as configs/cub_adl_resnet50.py. Expected (Table 3,
ImageNet-1k): Top-1 Loc 48.53, Top-1 Clas 75.85 (CAM: 46.19 / 76.56). Training settings (none in
the paper): configs/_paper.py.
"""

import _paper


def get_config():
    from wsolax.methods.placements import paper_inserts

    placement = "adl_paper"  # the source this config follows (gamma 0.9: the ADL paper's)
    return _paper.paper_config(
        "ilsvrc_adl_resnet50", "ilsvrc", "se_resnet50",
        inserts=paper_inserts("adl", "se_resnet50", placement),
        methods={"adl": {"drop_rate": 0.75, "gamma": 0.9}})
