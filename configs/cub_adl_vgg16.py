"""ADL on VGG16-GAP, CUB-200-2011 (Choe & Shim CVPR'19).

Source: the ADL paper. Placement `adl_paper` (wsolax.methods.placements): ADL after pool3, pool4
and conv5_3 (Table 2's best placement; the ADL authors' code puts the second layer after pool4 --
the CVPR'20 benchmark's code puts it before pool4, placement `wsolevaluation`, see
configs/wsolevaluation.py). gamma 0.8 for VGG-GAP as the ADL paper says (Sec. 4; the benchmark
uses 0.9 for every backbone), drop rate 0.75. Expected (Table 2 / Table 3, CUB): GT-known Loc
75.41, Top-1 Clas 65.27, Top-1 Loc 52.36 (CAM baseline: 51.09 / 67.55 / 34.41).
Training settings (none in the paper): configs/_paper.py.
"""

import _paper


def get_config():
    from wsolax.methods.placements import paper_inserts

    placement = "adl_paper"  # the source this config follows
    return _paper.paper_config(
        "cub_adl_vgg16", "cub", "vgg16_gap", inserts=paper_inserts("adl", "vgg16_gap", placement),
        methods={"adl": {"drop_rate": 0.75, "gamma": 0.8}})
