"""The one way a WSOL method plugs into wsolax: a `Method` names its hyperparameters and the hooks
it uses (docs/adding-a-method.md walks through an example).

Hooks, each optional, all pure functions of their arguments and the method's hyperparameters
(`hp`, an instance of `Method.hparams`), all run inside the jitted train step:

* ``layer(hp, dtype) -> factory``: a Flax module factory (called with ``name=``) inserted after the
  backbone stages `config.model.inserts` names; the module is called ``(x, train=...)`` and draws
  randomness from the ``dropout`` stream (ADL, DGDM, DFM).
* ``head(hp, num_classes, dtype) -> nn.Module``: replaces `config.model.head`; called
  ``(features, cam_classes) -> (logits, cams)`` for evaluation (Where to Look, later ACoL).
* ``transform(key, batch, hp, *, train, num_classes) -> batch``: changes the batch on device
  before the model sees it (HaS, CutMix; Where to Look's complementary pair). Identity when
  ``train`` is False. ``num_classes`` is the config's ``data.num_classes`` (None where the caller
  has no config): a label-mixing transform (CutMix) needs it to turn class indices into class
  distributions, ``"label"`` (B, K) floats, which the base cross-entropy accepts. The train step's
  accuracy metric still compares the argmax to the batch's original integer labels (the batch
  before any transform), as the benchmark's main.py does for CutMix.
* ``forward(model, variables, batch, hp, *, rngs) -> (out, updates)``: how the model is applied in
  training (default: ``model.apply(variables, batch["image"], train=True, ...)``); `out` needs
  ``"logits"``, `updates` holds the new ``batch_stats``. At most one selected method may have one.
* ``loss(hp, steps_per_epoch) -> term``: builds ``term(out, batch, step) -> (terms, metrics)``,
  scalars added in order to the base cross-entropy on ``out["logits"]``, and scalar metrics to log.
  A builder, not the term itself, so that a schedule in epochs is converted (and refused without
  a step count) when the objective is built.

Hyperparameters are one dataclass: its fields are the keys of `config.model.methods.<name>`, its
defaults the paper's, and `__post_init__` checks values (raise `ValueError` naming
`model.methods.<name>.<field>`). Unknown keys are refused by `make_hparams`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

# Fields of an inserted layer's Flax module that are wiring, not hyperparameters.
_WIRING = ("parent", "name", "dtype")

Batch = dict  # {"image": (B, H, W, 3), "label": (B,) int or (B, K) float, ...}


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    hparams: type  # a dataclass type; an instance is what every hook receives
    layer: Callable[..., Callable] | None = None
    head: Callable[..., Any] | None = None
    transform: Callable[..., Batch] | None = None
    forward: Callable[..., tuple[dict, dict]] | None = None
    loss: Callable[..., Callable] | None = None
    # Hyperparameters that only choose how the trained model is read at test time (a reading of
    # the paper, docs/methods.md): a checkpoint may be evaluated under any of their values.
    eval_readings: tuple[str, ...] = ()

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.hparams):
            raise TypeError(f"method '{self.name}': hparams must be a dataclass type")
        if not any((self.layer, self.head, self.transform, self.forward, self.loss)):
            raise ValueError(f"method '{self.name}' uses no hook")
        unknown = set(self.eval_readings) - {f.name for f in dataclasses.fields(self.hparams)}
        if unknown:
            raise ValueError(f"method '{self.name}': eval_readings {sorted(unknown)} are not "
                             f"hyperparameters")


def hparam_names(method: Method) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(method.hparams))


def make_hparams(method: Method, values: Mapping[str, Any]):
    """`method.hparams(**values)`, refusing a key that is not a field (named as its config key,
    with the known ones): a typo must not silently fall back to the paper's default."""
    known = hparam_names(method)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"config key 'model.methods.{method.name}.{unknown[0]}' is not a "
                         f"hyperparameter of {method.name}; known: {sorted(known)}")
    return method.hparams(**dict(values))


def require(ok: bool, method: str, field: str, message: str) -> None:
    """For `__post_init__` value checks: a ValueError naming the config key."""
    if not ok:
        raise ValueError(f"config key 'model.methods.{method}.{field}': {message}")


def layer_method(name: str, module: type, **hooks) -> Method:
    """A method whose layer is the Flax module class `module`: its hyperparameters are the module's
    fields (defaults included), so they are declared once, on the module."""
    fields = [(f.name, f.type, dataclasses.field(default=f.default))
              for f in dataclasses.fields(module) if f.name not in _WIRING and f.init]
    hparams = dataclasses.make_dataclass(f"{module.__name__}Hparams", fields, frozen=True)

    def layer(hp, dtype):
        return functools.partial(module, **dataclasses.asdict(hp), dtype=dtype)

    return Method(name=name, hparams=hparams, layer=layer, **hooks)
