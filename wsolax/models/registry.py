"""Name -> builder registries, so configs name backbones, heads and inserted layers."""

from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp
import ml_collections

from wsolax.models.heads import GAPLinearHead
from wsolax.models.stages import Inserts
from wsolax.models.tiny import TinyNet
from wsolax.models.wsol_model import WSOLModel

BACKBONES: dict[str, Callable] = {}
HEADS: dict[str, Callable] = {}
# Inserted-layer builders: name -> fn(method_config) -> module factory (accepting name=, parent=).
METHODS: dict[str, Callable] = {}


def register(table: dict, name: str):
    def wrap(fn):
        if name in table:
            raise ValueError(f"'{name}' is registered twice")
        table[name] = fn
        return fn
    return wrap


@register(BACKBONES, "tiny")
def _tiny(model_cfg, inserts: Inserts, dtype):
    return TinyNet(width=model_cfg.width, inserts=inserts, dtype=dtype)


@register(HEADS, "gap_linear")
def _gap_linear(model_cfg, num_classes: int, dtype):
    return GAPLinearHead(num_classes=num_classes, dtype=dtype)


@register(METHODS, "adl")
def _adl(hparams):
    from wsolax.methods.adl import ADL

    allowed = {"drop_rate", "gamma", "per_sample"}
    unknown = set(hparams.keys()) - allowed
    if unknown:
        raise ValueError(f"config key 'model.methods.adl.{sorted(unknown)[0]}' is not an ADL "
                         f"hyperparameter; known: {sorted(allowed)}")
    return functools.partial(ADL, **dict(hparams))


def _lookup(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} '{name}'; known: {sorted(table)}")
    return table[name]


def build_inserts(model_cfg: ml_collections.ConfigDict, dtype) -> Inserts:
    out = []
    for stage, method in model_cfg.inserts:
        builder = _lookup(METHODS, method, "inserted method")
        hparams = model_cfg.methods.get(method, ml_collections.ConfigDict())
        out.append((stage, functools.partial(builder(hparams), dtype=dtype)))
    return tuple(out)


def build_model(cfg: ml_collections.ConfigDict) -> WSOLModel:
    """Build the model a config describes."""
    dtype = jnp.bfloat16 if cfg.model.dtype == "bfloat16" else jnp.float32
    inserts = build_inserts(cfg.model, dtype)
    backbone = _lookup(BACKBONES, cfg.model.backbone, "backbone")(cfg.model, inserts, dtype)
    head = _lookup(HEADS, cfg.model.head, "head")(cfg.model, cfg.data.num_classes, dtype)
    return WSOLModel(backbone=backbone, head=head)
