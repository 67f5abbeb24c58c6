"""Named stage hooks: where attention-dropout layers plug into a backbone.

A backbone calls ``insert(self, name, x, train)`` after every named stage. ``inserts`` maps stage
names to module factories (built from the config), so any method can sit at any named stage of any
backbone without the backbone knowing about it.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax

ModuleFactory = Callable[..., nn.Module]
Inserts = tuple[tuple[str, ModuleFactory], ...]


def insert(parent: nn.Module, inserts: Inserts, stage: str, x: jax.Array, train: bool) -> jax.Array:
    """Apply the layers configured after `stage` (in config order); identity when none are."""
    for i, (name, factory) in enumerate(inserts):
        if name == stage:
            x = factory(name=f"{stage}_insert{i}")(x, train=train)
    return x


def check_stages(inserts: Inserts, available: tuple[str, ...], backbone: str) -> None:
    """Fail early, naming the stage, when a config inserts a layer at a stage the backbone lacks."""
    for name, _ in inserts:
        if name not in available:
            raise ValueError(
                f"backbone '{backbone}' has no stage named '{name}'; its stages are {available}")
