"""Search spaces: which config keys a hyperparameter search draws, from what distribution.

A space file (`configs/search/<method>.py`) defines `get_space()` returning a dict from dotted
config keys to specs (each range citing its source in a comment there):

    ("log_uniform", low, high)   float, log-uniform on [low, high] (low > 0)
    ("uniform", low, high)       float, uniform on [low, high]
    ("int", low, high)           integer, uniform on {low, ..., high}
    ("choice", (a, b, ...))      one of the values, uniformly

Keys are the config's own: `optim.lr`, `model.large_feature_map`, `model.methods.<m>.<field>`
(a field of the method's hyperparameter dataclass). `check_space` refuses, with one line naming
it, a key the config does not have, a method field the dataclass does not have, an empty or
inverted range and an unknown kind, before anything trains.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import ml_collections

from wsolax.config import ConfigError, flatten
from wsolax.registry import method_hparams, selected_methods

KINDS = ("log_uniform", "uniform", "int", "choice")


def load_space(path: str | Path) -> dict[str, tuple]:
    """`get_space()` of the space file `path` (its folder's siblings importable)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_wsolax_space_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, "get_space"):
        raise ConfigError(f"{path} defines no get_space()")
    return {str(k): tuple(v) for k, v in module.get_space().items()}


def check_space(space: dict[str, tuple], cfg: ml_collections.ConfigDict) -> None:
    if not space:
        raise ConfigError("the search space is empty")
    known = flatten(cfg)
    selected = {s.method.name for s in selected_methods(cfg.model)}
    for key, spec in space.items():
        parts = key.split(".")
        if parts[:2] == ["model", "methods"] and len(parts) == 4:
            method, field = parts[2], parts[3]
            if method not in selected:
                raise ConfigError(f"search space key '{key}': the config does not select "
                                  f"method '{method}' (it selects {sorted(selected) or 'none'})")
            fields = method_hparams(method)
            if field not in fields:
                raise ConfigError(f"search space key '{key}': not a hyperparameter of {method}; "
                                  f"known: {sorted(fields)}")
        elif key not in known:
            raise ConfigError(f"search space key '{key}' is not a config key")
        _check_spec(key, spec)


def _check_spec(key: str, spec: tuple) -> None:
    if not spec or spec[0] not in KINDS:
        raise ConfigError(f"search space key '{key}': kind must be one of {KINDS}, got {spec!r}")
    kind = spec[0]
    if kind == "choice":
        if len(spec) != 2 or not isinstance(spec[1], (tuple, list)) or not spec[1]:
            raise ConfigError(f"search space key '{key}': ('choice', (values, ...)) needs at "
                              f"least one value, got {spec!r}")
        return
    if len(spec) != 3:
        raise ConfigError(f"search space key '{key}': ({kind!r}, low, high), got {spec!r}")
    low, high = spec[1], spec[2]
    if not low < high:
        raise ConfigError(f"search space key '{key}': the range [{low}, {high}] is empty or "
                          f"inverted (low must be below high)")
    if kind == "log_uniform" and low <= 0:
        raise ConfigError(f"search space key '{key}': log_uniform needs low > 0, got {low}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"search space key '{key}': int bounds must be integers")


def set_value(cfg: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """cfg.<key> = value, creating a method's hyperparameter field the config leaves default."""
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = value


def canonical(space: dict[str, tuple]) -> str:
    """The space as one JSON string, to recognise a study's space on resume."""
    return json.dumps({k: list(v) if v[0] != "choice" else [v[0], list(v[1])]
                       for k, v in sorted(space.items())}, sort_keys=True)
