"""Map a PyTorch-layout state dict onto a Flax variable tree.

The architecture supplies `torch_name(module_path) -> str | None`: the torch module prefix of a
Flax module (e.g. ("backbone", "layer1_0", "conv1", "conv") -> "layer1.0.conv1"), or None for layers
that exist only in wsolax (new WSOL layers, initialised fresh). Leaves then map by kind:

  Conv kernel (kh, kw, in/groups, out) <- weight (out, in/groups, kh, kw)   [OIHW -> HWIO]
  Dense kernel (in, out)               <- weight (out, in)  (or a 1x1 conv weight)
  bias <- bias;  BatchNorm scale <- weight;  batch_stats mean/var <- running_mean/running_var

Shape mismatches are errors, except under `classifier` (the class count may differ from
ImageNet's 1000): those leaves keep their initialisation and are reported as skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
from flax import traverse_util

TorchName = Callable[[tuple[str, ...]], "str | None"]
_LEAF = {("params", "kernel"): "weight", ("params", "scale"): "weight",
         ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
         ("batch_stats", "var"): "running_var"}
# Bookkeeping tensors with no Flax counterpart.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


class WeightError(ValueError):
    """A weights file cannot be read or does not fit the model."""


@dataclasses.dataclass
class ConversionReport:
    loaded: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (flax, torch)
    new_layers: list[str] = dataclasses.field(default_factory=list)  # wsolax-only, kept at init
    missing: list[str] = dataclasses.field(default_factory=list)  # expected torch key absent
    skipped: list[str] = dataclasses.field(default_factory=list)  # classifier, class count differs
    unused: list[str] = dataclasses.field(default_factory=list)  # torch keys nothing consumed
    ignored: list[str] = dataclasses.field(default_factory=list)  # num_batches_tracked etc.

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        for title, items in (("new layers (initialised fresh)", self.new_layers),
                             ("MISSING from the file (initialised fresh)", self.missing),
                             ("skipped (class count differs)", self.skipped),
                             ("unused tensors in the file", self.unused)):
            if items:
                lines.append(f"{title}: {len(items)}")
                lines += [f"  {x}" for x in items]
        return "\n".join(lines)


def _torch_layout(value: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    if len(target_shape) == 4 and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if len(target_shape) == 2 and value.ndim == 2:
        return value.T
    if len(target_shape) == 2 and value.ndim == 4 and value.shape[2:] == (1, 1):
        return value[:, :, 0, 0].T  # a 1x1 conv classifier feeding a Dense
    if len(target_shape) == 4 and value.ndim == 2 and target_shape[:2] == (1, 1):
        return value.T[None, None]  # a linear layer as a 1x1 conv
    return value


def convert_torch_state_dict(state_dict: Mapping[str, np.ndarray], variables: Mapping,
                             torch_name: TorchName, *, classifier: tuple[str, ...] = (
                                 "head", "classifier"), strict: bool = True
                             ) -> tuple[dict, ConversionReport]:
    """Return (variables with the file's tensors, report). `variables` is the model's init tree.

    strict: raise if a tensor the architecture expects is absent from the file (otherwise it keeps
    its initialisation and is listed in `report.missing`).
    """
    report = ConversionReport()
    used: set[str] = set()
    flat = traverse_util.flatten_dict(dict(variables))
    out = {}
    for path, init in flat.items():
        collection, module_path, leaf = path[0], path[1:-1], path[-1]
        flax_name = "/".join(path)
        torch_leaf = _LEAF.get((collection, leaf))
        prefix = torch_name(tuple(module_path)) if torch_leaf else None
        if prefix is None:
            out[path] = init
            report.new_layers.append(flax_name)
            continue
        key = f"{prefix}.{torch_leaf}"
        if key not in state_dict:
            out[path] = init
            report.missing.append(f"{flax_name} <- {key}")
            continue
        used.add(key)
        value = _torch_layout(np.asarray(state_dict[key]), tuple(init.shape))
        if tuple(value.shape) != tuple(init.shape):
            if tuple(module_path[:len(classifier)]) == tuple(classifier):
                out[path] = init
                report.skipped.append(f"{flax_name} <- {key}: file {tuple(value.shape)}, "
                                      f"model {tuple(init.shape)}")
                continue
            raise WeightError(f"shape mismatch: {key} has shape {tuple(state_dict[key].shape)} "
                              f"(as {tuple(value.shape)} after layout change) but {flax_name} "
                              f"needs {tuple(init.shape)}; is the file for this architecture?")
        out[path] = np.asarray(value, dtype=np.asarray(init).dtype)
        report.loaded.append((flax_name, key))
    for key in state_dict:
        if key in used:
            continue
        (report.ignored if key.endswith(_IGNORED_SUFFIXES) else report.unused).append(key)
    if strict and report.missing:
        raise WeightError("the weights file lacks tensors the model expects:\n  "
                          + "\n  ".join(report.missing))
    return traverse_util.unflatten_dict(out), report
