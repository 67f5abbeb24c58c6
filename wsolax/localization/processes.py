"""Evaluation over several JAX processes: each scores its rows of every batch, then the
evaluators' states are exchanged through the distributed key-value store and merged exactly, so
every process holds the result single-process evaluation would give."""

from __future__ import annotations

import itertools
import json

import jax
from jax._src import distributed as _jax_distributed

from wsolax.evaluation.evaluator import WSOLEvaluator

_EXCHANGES = itertools.count()  # same sequence on every process: evaluations run in lockstep
TIMEOUT_MS = 30 * 60 * 1000


def merge_across_processes(evaluator: WSOLEvaluator, name: str) -> WSOLEvaluator:
    """Merge every process's `evaluator` of split `name` into each one (no-op on one process)."""
    if jax.process_count() == 1:
        return evaluator
    client = _jax_distributed.global_state.client
    key = f"wsolax/eval/{next(_EXCHANGES)}/{name}"
    me = jax.process_index()
    client.key_value_set(f"{key}/{me}", json.dumps(evaluator.state()))
    for p in range(jax.process_count()):
        if p != me:
            evaluator.merge(json.loads(client.blocking_key_value_get(f"{key}/{p}", TIMEOUT_MS)))
    return evaluator
