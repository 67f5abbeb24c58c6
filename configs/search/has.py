"""Hide-and-Seek (Singh & Lee, ICCV'17) as the reference runs it (wsolevaluation config.py
`--has_grid_size` 4 px, `--has_drop_rate` 0.5 at 224 px crops).

* drop_rate: a probability, drawn over [0, 1] (as Murtaza et al., arXiv 2404.10034, draw it);
* grid_size (px at the embedded set's 96 px crops): integers 2-24, from the reference's default
  4 px scaled to 96 px (2) to the largest patch of the HaS paper's ILSVRC set {16, 32, 44, 56} at
  224 px scaled to 96 px (24) -- wsolax's range (configs/synthetic_has.py scales the same way).
"""

from _common import common_space


def get_space():
    return {**common_space(),
            "model.methods.has.drop_rate": ("uniform", 0.0, 1.0),
            "model.methods.has.grid_size": ("int", 2, 24)}
