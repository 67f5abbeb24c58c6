"""DFM on ResNet50, CUB-200-2011 (Zhou et al., dual-attention focused module).

Paper (Implementation): DFM after conv4_1 and conv5_3 (= layer3's first block and layer4's end),
alpha 0.85, beta 0.95, omega 0.15, delta 0.6, gamma 0.4, tau 0.7. Expected (Table 3, CUB):
Top-1 Loc 56.14, Top-1 Clas 81.06 (CAM: 41.17 / 78.49). No training settings are given;
configs/_paper.py.
"""

import _paper


def get_config():
    from wsolax.methods.placements import paper_inserts

    return _paper.paper_config(
        "cub_dfm_resnet50", "cub", "resnet50", inserts=paper_inserts("dfm", "resnet50"),
        methods={"dfm": {"alpha": 0.85, "beta": 0.95, "omega": 0.15, "delta": 0.6,
                         "gamma": 0.4, "tau": 0.7}})
