"""Where to Look (Babar & Das, WACV'21; ../shared/papers/002_*.txt). The paper's values are the
centre:

* fusion_weight (beta of Eq. 15): 50, chosen "empirically" (Sec. 3.6), log-uniform on [12.5, 200], a
  factor of 4 either side (a weight of a loss, so its scale is what varies);
* hide_prob: 0.5 (Sec. 4.3, "Hyperparameters"), +- 0.25: [0.25, 0.75].

The patch sizes stay the paper's "Mixed" set (Table 6's best; configs/synthetic_wtl.py scales
{16, 32, 44, 56} at 224 px to 96 px).
"""

from _common import around, common_space


def get_space():
    return {**common_space(),
            "model.methods.where_to_look.fusion_weight": ("log_uniform", 12.5, 200.0),
            "model.methods.where_to_look.hide_prob": around(0.5)}
