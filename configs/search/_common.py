"""The knobs every method's search draws: the learning rate and the feature-map size, as in the
CVPR'20 protocol (Choe et al., "Evaluating WSOL Methods Right"; its authors, clovaai/wsolevaluation
issue #8: configs are drawn "according to the search space indicated in Table 5 (appendix)").

That Table 5 could not be read in this workplace (docs/search.md says what was found), so the
ranges here are wsolax's, each with its reason:

* learning rate, log-uniform on [1e-5, 1]: the range of the learning-rate row in the search-space
  table of Murtaza et al. (arXiv 2404.10034), a later WSOL benchmark of the same methods; 0.01, the
  reference's argparse default (config.py `--lr`), sits inside it. The new-layer multiplier stays
  10 (configs/_benchmark.py, docs/methods.md P1), as the readings issue fixed it.
* `large_feature_map`, False or True: the reference's own switch (config.py
  `--large_feature_map`); on the tiny backbone True drops the pool before stage3 (12 x 12 maps
  become 24 x 24 at 96 px), as on the real backbones it drops a stride.

The draws of a key depend on the search seed, the draw index and the key only
(wsolax/search/sampler.py): every method's study with the same seed draws the same learning rates
and feature-map sizes, trial for trial.
"""

LEARNING_RATE = ("log_uniform", 1e-5, 1.0)
FEATURE_MAP = ("choice", (False, True))


def common_space() -> dict:
    return {"optim.lr": LEARNING_RATE, "model.large_feature_map": FEATURE_MAP}


def around(value: float, half_width: float = 0.25, low: float = 0.0, high: float = 1.0) -> tuple:
    """Uniform on value +- half_width, cut to [low, high]: the range for a method-paper knob that
    lies in [low, high] and whose paper states one value and explores none."""
    return ("uniform", max(low, value - half_width), min(high, value + half_width))
