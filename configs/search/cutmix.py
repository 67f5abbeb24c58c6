"""CutMix (Yun et al., ICCV'19) as the reference runs it (wsolevaluation config.py `--cutmix_beta`
1.0, `--cutmix_prob` 1.0).

* prob (how often a batch is mixed): a probability, drawn over [0, 1];
* beta (the Beta(beta, beta) prior of the mixed area): log-uniform on [0.25, 4], two octaves
  either side of the CutMix paper's and the reference's 1.0 -- wsolax's range.
"""

from _common import common_space


def get_space():
    return {**common_space(),
            "model.methods.cutmix.prob": ("uniform", 0.0, 1.0),
            "model.methods.cutmix.beta": ("log_uniform", 0.25, 4.0)}
