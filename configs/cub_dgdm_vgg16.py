"""DGDM on VGG16-GAP, CUB-200-2011 (Yin et al., dual-attention guided dropblock).

Paper: DGDM "in all the pooling layers and the conv5-3 layer"; the hyperparameters, their sources
and Table 1's ablations as keys are in wsolax/methods/dgdm.py's docstring. Expected (Table 1 /
Table 3, CUB): GT-known Loc 75.02, Top-1 Clas 69.89, Top-1 Loc 54.34. Training settings: the
paper says SGD (Sec. 3.4) and no more; configs/_paper.py.
"""

import _paper


def get_config():
    from wsolax.methods.placements import paper_inserts

    return _paper.paper_config(
        "cub_dgdm_vgg16", "cub", "vgg16_gap", inserts=paper_inserts("dgdm", "vgg16_gap"),
        methods={"dgdm": {"drop_rate": 0.75, "alpha": 0.5, "beta": 3.0, "block_size": 3,
                          "delta_high": 0.8, "delta_low": 0.05}})
