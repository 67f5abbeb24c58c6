"""DGDM (Yin et al.; ../shared/papers/000_*.txt). The paper's values are the centre:

* block_size: integers 1-4, the sizes Table 1 explores (3 is its best; configs/synthetic_dgdm.py
  scales 3 on 14 x 14 maps to 3 on 12 x 12);
* beta (CAGD's drop threshold, a multiple of the channel attention's minimum): uniform on
  [2, 3.5], the values Table 1 explores (3 is its best);
* drop_rate: 0.75 "following the settings of work [3]" (Sec. 4.1), +- 0.25: [0.5, 1];
* alpha (CAGD's drop probability): 0.5 (Sec. 3.2), +- 0.25: [0.25, 0.75];
* delta_high (SAGD's most-discriminative threshold): 0.8, +- 0.25 within [0, 1]: [0.55, 1];
* delta_low (SAGD's background threshold): the paper gives no value (docs/methods.md G1; wsolax
  uses 0.05), drawn on [0, 0.3], below every delta_high.
"""

from _common import around, common_space


def get_space():
    return {**common_space(),
            "model.methods.dgdm.block_size": ("int", 1, 4),
            "model.methods.dgdm.beta": ("uniform", 2.0, 3.5),
            "model.methods.dgdm.drop_rate": around(0.75),
            "model.methods.dgdm.alpha": around(0.5),
            "model.methods.dgdm.delta_high": around(0.8),
            "model.methods.dgdm.delta_low": ("uniform", 0.0, 0.3)}
