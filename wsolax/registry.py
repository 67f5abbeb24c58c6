"""Name -> builder registries, so configs name backbones, heads and inserted layers.

Backbones and inserted methods are registered by dotted path and imported on first use, so each
lives in its own file without this table importing every architecture.

* A backbone module exposes ``build_backbone(name, model_cfg, inserts, dtype) -> nn.Module`` and
  ``torch_name(path) -> str | None`` (Flax module path -> torch module prefix, for weight import).
* A method module's Flax class takes its hyperparameters as dataclass fields; the config's
  ``model.methods.<name>`` keys are checked against those fields.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Callable

import ml_collections

from wsolax.models.heads import GAPLinearHead
from wsolax.models.stages import Inserts
from wsolax.models.tiny import TinyNet
from wsolax.models.wsol_model import WSOLModel
from wsolax.precision import compute_dtype

HEADS: dict[str, Callable] = {}
# name -> "module:attribute" of the Flax module class of an inserted layer.
METHODS: dict[str, object] = {
    "adl": "wsolax.methods.adl:ADL",
    "dgdm": "wsolax.methods.dgdm:DGDM",
    "dfm": "wsolax.methods.dfm:DFM",
}
# name -> module exposing build_backbone / torch_name ("" for the tiny test backbone).
BACKBONES: dict[str, str] = {
    "tiny": "",
    **{n: "wsolax.models.resnet" for n in ("resnet18", "resnet34", "resnet50", "resnet101",
                                           "se_resnet50")},
    "vgg16_gap": "wsolax.models.vgg",
    "mobilenet_v1": "wsolax.models.mobilenet",
    "inception_v3": "wsolax.models.inception",
}
# Fields of an inserted layer's module that are wiring, not hyperparameters.
_NOT_HPARAMS = {"parent", "name", "dtype"}


def register(table: dict, name: str):
    def wrap(fn):
        if name in table:
            raise ValueError(f"'{name}' is registered twice")
        table[name] = fn
        return fn
    return wrap


@register(HEADS, "gap_linear")
def _gap_linear(model_cfg, num_classes: int, dtype):
    return GAPLinearHead(num_classes=num_classes, dtype=dtype)


@register(HEADS, "where_to_look")
def _where_to_look(model_cfg, num_classes: int, dtype):
    from wsolax.methods.where_to_look import WhereToLookHead

    w = model_cfg.wtl
    return WhereToLookHead(num_classes=num_classes, agg_features=w.agg_features,
                           agg_kernel=w.agg_kernel, test_branch=w.test_branch,
                           share_classifier=w.share_classifier, dtype=dtype)


def _lookup(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} '{name}'; known: {sorted(table)}")
    return table[name]


def _import(target):
    if not isinstance(target, str):  # already a class/module (e.g. registered by a test)
        return target
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


def method_class(name: str):
    return _import(_lookup(METHODS, name, "inserted method"))


def method_hparams(name: str) -> tuple[str, ...]:
    cls = method_class(name)
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _NOT_HPARAMS)


def build_inserts(model_cfg: ml_collections.ConfigDict, dtype) -> Inserts:
    out = []
    for stage, method in model_cfg.inserts:
        cls = method_class(method)
        hparams = dict(model_cfg.methods.get(method, ml_collections.ConfigDict()))
        allowed = method_hparams(method)
        unknown = sorted(set(hparams) - set(allowed))
        if unknown:
            raise ValueError(f"config key 'model.methods.{method}.{unknown[0]}' is not a "
                             f"{method} hyperparameter; known: {sorted(allowed)}")
        out.append((stage, functools.partial(cls, **hparams, dtype=dtype)))
    return tuple(out)


def backbone_module(name: str):
    """The module holding backbone `name` (None for the built-in tiny backbone)."""
    target = _lookup(BACKBONES, name, "backbone")
    return _import(target) if target else None


def build_backbone(model_cfg: ml_collections.ConfigDict, inserts: Inserts, dtype):
    module = backbone_module(model_cfg.backbone)
    if module is None:
        return TinyNet(width=model_cfg.width, inserts=inserts, dtype=dtype,
                       large_feature_map=bool(model_cfg.large_feature_map))
    return module.build_backbone(model_cfg.backbone, model_cfg, inserts, dtype)


def build_model(cfg: ml_collections.ConfigDict) -> WSOLModel:
    """Build the model a config describes."""
    dtype = compute_dtype(cfg.model.dtype)
    inserts = build_inserts(cfg.model, dtype)
    backbone = build_backbone(cfg.model, inserts, dtype)
    head = _lookup(HEADS, cfg.model.head, "head")(cfg.model, cfg.data.num_classes, dtype)
    return WSOLModel(backbone=backbone, head=head)
