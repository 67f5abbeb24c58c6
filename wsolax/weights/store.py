"""Converted weights: saved once as a flat `.safetensors` file, overlaid onto a fresh init.

Keys are the Flax paths ("params/backbone/layer1_0/conv1/conv/kernel"); metadata records the
backbone, the source file and the conversion summary, so a mismatched file is refused with a
message naming both architectures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from flax import traverse_util

from wsolax.weights.convert import WeightError


def save_converted(variables: Mapping, path: str | Path, *, backbone: str, source: str = "",
                   summary: str = "") -> Path:
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    tensors = {k: np.ascontiguousarray(np.asarray(v)) for k, v in flat.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"wsolax_backbone": backbone, "source": source,
                                           "summary": summary})
    tmp.replace(path)
    return path


def load_converted(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightError(f"converted weights not found: {path} (create them with "
                          f"`python -m wsolax.convert`)")
    with safe_open(str(path), framework="numpy") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, metadata


def overlay(variables: Mapping, path: str | Path, *, backbone: str) -> tuple[dict, list[str]]:
    """Replace the leaves of `variables` that the converted file holds; returns (tree, fresh leaves).

    Leaves absent from the file (new WSOL layers, a classifier with a different class count) keep
    their initialisation and are returned by name. Any shape mismatch is an error.
    """
    tensors, metadata = load_converted(path)
    source_backbone = metadata.get("wsolax_backbone", "?")
    if source_backbone != backbone:
        raise WeightError(f"{path} holds weights converted for backbone '{source_backbone}', but "
                          f"the config builds '{backbone}'")
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    fresh = []
    for key, init in flat.items():
        if key not in tensors:
            fresh.append(key)
            continue
        value = tensors[key]
        if tuple(value.shape) != tuple(init.shape):
            if key.startswith("params/head/classifier/"):
                fresh.append(key)
                continue
            raise WeightError(f"{path}: {key} has shape {tuple(value.shape)}, the model needs "
                              f"{tuple(init.shape)}")
        flat[key] = np.asarray(value, dtype=np.asarray(init).dtype)
    unknown = sorted(set(tensors) - set(flat))
    if unknown:
        raise WeightError(f"{path} holds tensors this model does not have, e.g. {unknown[:3]}; "
                          f"was it converted with a different config?")
    return traverse_util.unflatten_dict(flat, sep="/"), fresh
