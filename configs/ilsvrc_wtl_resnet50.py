"""Where to Look on ResNet50, ILSVRC (Babar & Das, WACV 2021).

Same method settings as configs/cub_wtl_resnet50.py (see there for what is the paper's and what is
wsolax's choice). Expected (Table 2 / Table 6, ILSVRC 2016 val, ResNet50 Mixed): Top-1 Loc 52.36,
GT-known Loc 67.89 (their ResNet50-CAM: 38.99 / 51.86). Training settings: configs/_paper.py.
"""

import _paper
import cub_wtl_resnet50


def get_config():
    return cub_wtl_resnet50.where_to_look(
        _paper.paper_config("ilsvrc_wtl_resnet50", "ilsvrc", "resnet50"))
