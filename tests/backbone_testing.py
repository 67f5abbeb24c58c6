"""Helpers shared by the backbone parity tests (test_vgg, test_mobilenet, test_inception)."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch

from wsolax.config import base_config
from wsolax.models.layers import BatchNorm
from wsolax.models.wsol_model import init_key


def backbone_config(backbone: str, num_classes: int, **model):
    """base_config() with `backbone`, `num_classes` and any `model.*` keys set."""
    cfg = base_config()
    cfg.model.backbone = backbone
    cfg.data.num_classes = num_classes
    for k, v in model.items():
        cfg.model[k] = v
    return cfg


def numpy_variables(model, x, seed=0):
    """The model's variable tree with numpy values (shapes from `jax.eval_shape`).

    Stands in for `jax.jit(model.init)`: on XLA:CPU every parameter's RNG call adds ~0.5-1 s of
    compile time (measured: 12 s for VGG16's 28 tensors, minutes for InceptionV3's ~190), too slow
    for a unit test. Parameters get He-scaled normals, BatchNorm statistics mean 0 / var 1.
    """
    shapes = jax.eval_shape(lambda k: model.init(k, x, train=False), init_key(0))
    rng = np.random.default_rng(seed)

    def leaf(path, s):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel":
            return rng.standard_normal(s.shape, np.float32) * np.float32(
                np.sqrt(2.0 / np.prod(s.shape[:-1])))
        if name in ("scale", "var"):
            return np.ones(s.shape, np.float32)
        return np.zeros(s.shape, np.float32) if name == "mean" else (
            rng.standard_normal(s.shape, np.float32) * np.float32(0.1))
    return jax.tree_util.tree_map_with_path(leaf, shapes)


def batchnorm_modes(model, variables, x):
    """use_running_average of every BatchNorm called in a training-mode forward (traced only)."""
    modes = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, BatchNorm) and context.method_name == "__call__":
            modes.append(context.module.use_running_average)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]), variables)
    return modes


@pytest.fixture(scope="module", autouse=True)
def torch_one_thread():
    """Import into a test module to run its torch references on one thread: on a shared 2-core
    machine torch's intra-op threads spin against each other (measured: a reference forward took
    6 s with 2 threads, 0.3 s with 1)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
