"""DFM (Zhou et al.; ../shared/papers/001_*.txt). The paper's values ("Implementation": alpha 0.85,
beta 0.95, omega 0.15, delta 0.6, gamma 0.4, tau 0.70 on ResNet50) are the centre:

* delta, gamma (the fusion weights): uniform on [0.1, 0.9], the range Table 2 explores
  (delta 0.1-0.9 x gamma 0.1-0.9; 0.6 / 0.4 its best);
* alpha, beta (the mask thresholds), omega (the neighbour-focus weight), tau (the probability of
  choosing the position map): the paper states one value each and explores none; each is drawn
  on its value +- 0.25 within [0, 1].
"""

from _common import around, common_space


def get_space():
    return {**common_space(),
            "model.methods.dfm.delta": ("uniform", 0.1, 0.9),
            "model.methods.dfm.gamma": ("uniform", 0.1, 0.9),
            "model.methods.dfm.alpha": around(0.85),
            "model.methods.dfm.beta": around(0.95),
            "model.methods.dfm.omega": around(0.15),
            "model.methods.dfm.tau": around(0.7)}
