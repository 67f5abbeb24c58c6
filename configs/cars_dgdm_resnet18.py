"""DGDM on ResNet18, Stanford Cars (Yin et al., dual-attention guided dropblock).

The paper places DGDM in "intermediate and higher-level layers" of ResNets without naming them;
we use ADL's ResNet placement (layer3's first block, layer4's first block, layer4's end), which the
paper says it follows. delta_high 0.9 = ADL's ResNet gamma. Expected (Table 2, Stanford Cars):
Top-1 Loc 87.38, Top-1 Clas 88.91 (ADL: 86.50 / 88.50). Training settings: configs/_paper.py
(no source gives any for Cars; CUB's are used).
"""

import _paper


def get_config():
    from wsolax.methods.placements import paper_inserts

    return _paper.paper_config(
        "cars_dgdm_resnet18", "cars", "resnet18", inserts=paper_inserts("dgdm", "resnet18"),
        methods={"dgdm": {"drop_rate": 0.75, "alpha": 0.5, "beta": 3.0, "block_size": 3,
                          "delta_high": 0.9, "delta_low": 0.05}})
