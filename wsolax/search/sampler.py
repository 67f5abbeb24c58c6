"""Random search whose every draw is a function of (seed, draw index, key) only.

Optuna's RandomSampler draws from one generator in the order trials are asked, so a study resumed
in a new process (or shared by several) would repeat or reshuffle its settings. Here the n-th new
trial of a study -- n counts the trials that are not retries of an interrupted one -- draws each
key from `numpy.random.default_rng([seed, n, crc32(key)])`: the same seed gives the same sequence
of settings however often the study is interrupted and resumed. Retries are enqueued with their
interrupted trial's settings (Optuna's RetryHeartbeatStaleTrialCallback) and draw nothing.
Distributions as the paper's random search: uniform, log-uniform (uniform in log space), uniform
integers, uniform choice.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

DRAW = "draw"  # user attribute: the trial's draw index


def draw_index(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
    """How many earlier trials drew their own settings (retries excluded)."""
    earlier = study._storage.get_all_trials(study._study_id, deepcopy=False)
    return sum(1 for t in earlier
               if t.number < trial.number and "failed_trial" not in t.system_attrs)


class SeededRandomSampler(optuna.samplers.BaseSampler):
    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def before_trial(self, study, trial):
        if "failed_trial" not in trial.system_attrs:
            study._storage.set_trial_user_attr(trial._trial_id, DRAW, draw_index(study, trial))

    def sample_independent(self, study, trial, param_name, distribution):
        n = study._storage.get_trial(trial._trial_id).user_attrs[DRAW]
        rng = np.random.default_rng([self.seed, n, zlib.crc32(param_name.encode())])
        if isinstance(distribution, CategoricalDistribution):
            return distribution.choices[int(rng.integers(len(distribution.choices)))]
        if isinstance(distribution, IntDistribution):
            return int(rng.integers(distribution.low, distribution.high + 1))
        if isinstance(distribution, FloatDistribution):
            if distribution.log:
                return float(math.exp(rng.uniform(math.log(distribution.low),
                                                  math.log(distribution.high))))
            return float(rng.uniform(distribution.low, distribution.high))
        raise TypeError(f"unsupported distribution for {param_name}: {distribution!r}")
