"""Name -> builder registries, so configs name backbones, heads and methods.

Backbones are registered by dotted path and methods found by file name, both imported on first
use, so each lives in its own file without this table importing every architecture.

* A backbone module exposes ``build_backbone(name, model_cfg, inserts, dtype) -> nn.Module`` and
  ``torch_name(path) -> str | None`` (Flax module path -> torch module prefix, for weight import).
* A method is a `wsolax.methods.api.Method`; wsolax/methods/<name>.py (or the package
  <name>/) defines it as `METHOD`, other code registers one with `register_method`. The config's
  ``model.methods.<name>`` keys are checked against its hyperparameter dataclass.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
from typing import Callable

import ml_collections

from wsolax.methods.api import Method, hparam_names, make_hparams
from wsolax.models.heads import GAPLinearHead
from wsolax.models.stages import Inserts
from wsolax.models.tiny import TinyNet
from wsolax.models.wsol_model import WSOLModel
from wsolax.precision import compute_dtype

HEADS: dict[str, Callable] = {}
# The head a method's own head replaces (a config naming another head as well is refused).
PLAIN_HEAD = "gap_linear"
# name -> Method: those registered with `register_method` (tests, code outside wsolax); the
# methods of wsolax are found by name, see `get_method`.
METHODS: dict[str, Method] = {}
METHODS_PACKAGE = "wsolax.methods"
# name -> module exposing build_backbone / torch_name ("" for the tiny test backbone).
BACKBONES: dict[str, str] = {
    "tiny": "",
    **{n: "wsolax.models.resnet" for n in ("resnet18", "resnet34", "resnet50", "resnet101",
                                           "se_resnet50")},
    "vgg16_gap": "wsolax.models.vgg",
    "mobilenet_v1": "wsolax.models.mobilenet",
    "inception_v3": "wsolax.models.inception",
}


def register(table: dict, name: str):
    def wrap(fn):
        if name in table:
            raise ValueError(f"'{name}' is registered twice")
        table[name] = fn
        return fn
    return wrap


def register_method(method: Method) -> Method:
    """Make `method` selectable by its name (for methods that do not live in wsolax/methods/)."""
    if method.name in METHODS or _module_method(method.name) is not None:
        raise ValueError(f"method '{method.name}' is registered twice")
    METHODS[method.name] = method
    return method


@register(HEADS, PLAIN_HEAD)
def _gap_linear(model_cfg, num_classes: int, dtype):
    return GAPLinearHead(num_classes=num_classes, dtype=dtype,
                         classifier_init_std=model_cfg.classifier_init_std)


def _lookup(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} '{name}'; known: {sorted(table)}")
    return table[name]


def _import(target):
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


def _module_method(name: str) -> Method | None:
    """`METHOD` of the module (or package) wsolax/methods/<name>: a method's file is its
    registration, so adding one touches nothing else."""
    if not name.isidentifier() or importlib.util.find_spec(f"{METHODS_PACKAGE}.{name}") is None:
        return None
    method = getattr(importlib.import_module(f"{METHODS_PACKAGE}.{name}"), "METHOD", None)
    if method is not None and method.name != name:
        raise ValueError(f"{METHODS_PACKAGE}.{name}.METHOD is named '{method.name}'; a method's "
                         f"name is its file's")
    return method


def method_names() -> tuple[str, ...]:
    """Every selectable method (for listings and the method contract tests)."""
    package = importlib.import_module(METHODS_PACKAGE)
    found = {m.name for m in pkgutil.iter_modules(package.__path__) if _module_method(m.name)}
    return tuple(sorted(found | set(METHODS)))


def get_method(name: str) -> Method:
    method = METHODS.get(name) or _module_method(name)
    if method is None:
        raise ValueError(f"unknown method '{name}'; known: {list(method_names())}")
    return method


def method_hparams(name: str) -> tuple[str, ...]:
    return hparam_names(get_method(name))


@dataclasses.dataclass(frozen=True)
class Selected:
    method: Method
    hparams: object  # an instance of method.hparams


def selected_methods(model_cfg: ml_collections.ConfigDict) -> tuple[Selected, ...]:
    """The methods a model config uses, with checked hyperparameters, in name order.

    A method with a layer is selected by naming it in `model.inserts` (its `model.methods` section
    then only sets hyperparameters, and is still checked); any other method by having a section in
    `model.methods` (`{}`: the paper's defaults). Every section must name a known method.
    """
    inserted = {m for _, m in model_cfg.inserts}
    names = sorted(set(model_cfg.methods.keys()) | inserted)
    out = []
    for name in names:
        method = get_method(name)
        hparams = make_hparams(method, dict(model_cfg.methods.get(name, {})))
        if name in inserted and method.layer is None:
            raise ValueError(f"config key 'model.inserts': method '{name}' has no layer to insert")
        if method.layer is None or name in inserted:
            out.append(Selected(method, hparams))
    heads = [s.method.name for s in out if s.method.head is not None]
    if len(heads) > 1 or (heads and model_cfg.head != PLAIN_HEAD):
        raise ValueError(f"config key 'model.head': {model_cfg.head!r} and the methods {heads} "
                         f"each give the head; keep one")
    return tuple(out)


def build_inserts(model_cfg: ml_collections.ConfigDict, dtype,
                  selected: tuple[Selected, ...] | None = None) -> Inserts:
    selected = selected_methods(model_cfg) if selected is None else selected
    layers = {s.method.name: s for s in selected if s.method.layer is not None}
    return tuple((stage, layers[name].method.layer(layers[name].hparams, dtype))
                 for stage, name in model_cfg.inserts)


def build_head(model_cfg: ml_collections.ConfigDict, num_classes: int, dtype,
               selected: tuple[Selected, ...]):
    for s in selected:
        if s.method.head is not None:
            return s.method.head(s.hparams, num_classes, dtype)
    if model_cfg.head not in HEADS and model_cfg.head in method_names():
        raise ValueError(f"config key 'model.head': '{model_cfg.head}' is a method; select it "
                         f"with config.model.methods.{model_cfg.head} = {{}}")
    return _lookup(HEADS, model_cfg.head, "head")(model_cfg, num_classes, dtype)


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
    selected = selected_methods(cfg.model)
    backbone = build_backbone(cfg.model, build_inserts(cfg.model, dtype, selected), dtype)
    head = build_head(cfg.model, cfg.data.num_classes, dtype, selected)
    return WSOLModel(backbone=backbone, head=head)
