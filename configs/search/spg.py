"""SPG (Zhang et al., ECCV'18): its three pairs of thresholds on the normalised maps
(wsolevaluation config.py: `--spg_threshold_1h/1l` 0.7 / 0.01, `_2h/2l` 0.5 / 0.05, `_3h/3l`
0.7 / 0.1; each pair needs low <= high, wsolax/methods/spg/method.py). Each high threshold is drawn
on [0.5, 1] and each low one on [0, 0.5]: the pair can never cross, and every reference default
lies inside -- wsolax's ranges (a space whose bounds depend on another draw is not expressible in
the space format)."""

from _common import common_space


def get_space():
    space = common_space()
    for i in (1, 2, 3):
        space[f"model.methods.spg.threshold_{i}h"] = ("uniform", 0.5, 1.0)
        space[f"model.methods.spg.threshold_{i}l"] = ("uniform", 0.0, 0.5)
    return space
