"""ACoL (Zhang et al., CVPR'18): its erasing threshold (wsolevaluation config.py
`--acol_threshold` 0.7), a fraction of the normalised map, drawn over [0, 1] (as Murtaza et al.,
arXiv 2404.10034, draw it)."""

from _common import common_space


def get_space():
    return {**common_space(), "model.methods.acol.threshold": ("uniform", 0.0, 1.0)}
