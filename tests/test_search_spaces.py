"""The fair trial's search spaces (configs/search/*.py): each loads, names only knobs its method's
benchmark config has, and every setting it can draw is one the method accepts."""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest

from wsolax.config import load_config
from wsolax.search.space import check_space, load_space
from wsolax.search.study import trial_config

METHODS = ("cam", "adl", "dgdm", "dfm", "wtl", "has", "acol", "spg", "cutmix")


def _ends(spec):
    return spec[1] if spec[0] == "choice" else (spec[1], spec[2])


@pytest.mark.parametrize("method", METHODS)
def test_every_corner_of_the_space_is_a_setting_the_method_accepts(method):
    cfg = load_config(f"configs/synthetic_{method}.py:finegrained", [])
    space = load_space(f"configs/search/{method}.py")
    check_space(space, cfg)
    assert space["optim.lr"] == ("log_uniform", 1e-5, 1.0)
    assert space["model.large_feature_map"] == ("choice", (False, True))
    keys = sorted(space)
    corners = list(itertools.product(*(_ends(space[k]) for k in keys)))
    for corner in corners[:: max(1, len(corners) // 64)] + [corners[-1]]:
        trial_config(cfg, dict(zip(keys, corner)), 0, "val")  # raises on a refused setting


def test_paired_thresholds_can_never_cross():
    spg = load_space("configs/search/spg.py")
    for i in (1, 2, 3):
        low = spg[f"model.methods.spg.threshold_{i}l"]
        high = spg[f"model.methods.spg.threshold_{i}h"]
        assert low[2] <= high[1]
    dgdm = load_space("configs/search/dgdm.py")
    assert dgdm["model.methods.dgdm.delta_low"][2] < dgdm["model.methods.dgdm.delta_high"][1]


def test_the_preregistered_learning_rates_are_the_samplers_draws():
    # docs/benchmark_preregistration_v2.md lists them; recomputed here from the rule the sampler
    # documents (numpy.random.default_rng([seed, n, crc32(key)])).
    written = [1.01e-3, 8.11e-2, 6.66e-2, 3.14e-4, 2.74e-2, 3.61e-5, 4.44e-3, 1.75e-4, 2.34e-1,
               8.85e-2]
    text = " ".join(open("docs/benchmark_preregistration_v2.md").read().split())
    assert "1.01e-3, 8.11e-2, 6.66e-2, 3.14e-4" in text
    for n, lr in enumerate(written):
        rng = np.random.default_rng([35, n, zlib.crc32(b"optim.lr")])
        assert math.exp(rng.uniform(math.log(1e-5), 0.0)) == pytest.approx(lr, rel=5e-3)
