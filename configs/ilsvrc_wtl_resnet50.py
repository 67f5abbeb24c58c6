"""Where to Look on ResNet50, ILSVRC (Babar & Das, WACV 2021).

Same method settings as configs/cub_wtl_resnet50.py (see there for what is the paper's and what is
wsolax's choice). Expected (Table 2 / Table 6, ILSVRC 2016 val, ResNet50 Mixed): Top-1 Loc 52.36,
GT-known Loc 67.89 (their ResNet50-CAM: 38.99 / 51.86). Schedule: configs/_paper.py (CVPR'20
ILSVRC protocol: 10 epochs, decay every 3).
"""

import _paper


def get_config():
    c = _paper.paper_config("ilsvrc_wtl_resnet50", "ilsvrc", "resnet50")
    c.model.head = "where_to_look"
    c.model.wtl.patch_sizes = (16, 32, 44, 56)
    c.model.wtl.hide_prob = 0.5
    c.model.wtl.fusion_weight = 50.0
    c.model.wtl.agg_features = 1024
    c.model.wtl.agg_kernel = 3
    return c
