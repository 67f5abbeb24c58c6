"""The benchmark's baselines each train a step on VGG16-GAP, ResNet50 and InceptionV3, placed as
clovaai/wsolevaluation places them (configs/wsolevaluation.py for ACoL and CutMix + HaS, the
stages of `BENCHMARK_STAGES` for SPG).

These check that each placement builds and trains on a full backbone: finite losses and gradients,
gradients reaching the method's own parameters, BatchNorm statistics updated. They compare no
numbers against an oracle (those tests stay in each method's file), so they are not `numerics`
tests: CI's AVX2 rerun leaves these full-backbone compilations out. Their variables are
backbone_testing.numpy_variables (shapes from `jax.eval_shape`), not the model's initialisers: on
XLA:CPU each parameter's random draw costs a compilation, ~45 s for SPG on InceptionV3 alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from backbone_testing import numpy_variables

from wsolax import registry
from wsolax.config import base_config, load_config
from wsolax.methods.spg import BENCHMARK_HPARAMS, BENCHMARK_STAGES
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import initial_state
from wsolax.training.step import make_train_step

pytestmark = pytest.mark.slow


def _images(size, seed=0):
    return np.random.default_rng(seed).normal(size=(2, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("arch,size", [("vgg16", 32), ("resnet50", 32), ("inception_v3", 64)])
def test_acol_trains_a_step_on_each_backbone(arch, size):
    cfg = load_config(f"configs/wsolevaluation.py:cub,cam,{arch}",
                      ["--config.data.num_classes=6", "--config.model.methods.acol={'features': 16}"])
    model = registry.build_model(cfg)
    x = _images(size)
    variables = numpy_variables(model, x)
    batch = {"image": jnp.asarray(x), "label": jnp.asarray([1, 4])}
    objective = build_objective(cfg)

    def loss_of(params):
        return objective(model, {**variables, "params": params}, batch, jax.random.key(0), 0)

    (loss, (aux, updates)), grads = jax.jit(jax.value_and_grad(loss_of, has_aux=True))(
        variables["params"])
    assert np.isfinite(float(loss)) and set(aux["metrics"]) >= {"loss_ce_a", "loss_ce_b"}
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["head"]["classifier_B"]["conv1"]["kernel"]).sum()) > 0
    if arch != "vgg16":  # BatchNorm backbones: the training forward updates the statistics
        assert jax.tree.leaves(updates["batch_stats"])


@pytest.mark.parametrize("backbone,size", [("vgg16_gap", 32), ("resnet50", 32),
                                           ("inception_v3", 64)])
def test_spg_trains_a_step_on_each_backbone(backbone, size):
    c = base_config()
    c.model.backbone = backbone
    c.data.num_classes = 5
    c.model.inserts = tuple((s, "spg") for s in BENCHMARK_STAGES[backbone])
    c.model.methods.spg = {**BENCHMARK_HPARAMS[backbone], "mask_size": size, "min_foreground": 1}
    model = registry.build_model(c)
    x = _images(size)
    variables = numpy_variables(model, x)
    batch = {"image": jnp.asarray(x), "label": jnp.asarray([1, 4])}
    objective = build_objective(c, 10)
    (loss, (aux, updates)), grads = jax.jit(jax.value_and_grad(
        lambda p: objective(model, {**variables, "params": p}, batch, jax.random.key(0), 0),
        has_aux=True))(variables["params"])
    assert np.isfinite(float(loss)) and set(aux["metrics"]) >= {"loss_spg_b1", "loss_spg_c"}
    for name in ("b_shared", "c", "classes"):
        assert float(optax.tree.norm(grads["head"][name])) > 0
    if backbone == "resnet50":
        assert "batch_stats" in updates


@pytest.mark.parametrize("architecture", ["vgg16", "resnet50", "inception_v3"])
def test_cutmix_and_has_train_a_step_on_each_backbone(architecture):
    # The benchmark trains CutMix and HaS with its CAM architecture on each backbone: the CAM
    # model, nothing inserted, the transforms on the input. Both composed, one real step on two
    # 64 px images (InceptionV3's stem needs more than 32 px).
    cfg = load_config(f"configs/wsolevaluation.py:cub,cam,{architecture}")
    cfg.model.methods.cutmix = {}
    cfg.model.methods.has = {}
    assert cfg.model.inserts == ()
    model = registry.build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    x = _images(64)
    state = jax.jit(lambda v: initial_state(v, tx))(numpy_variables(model, x))
    batch = {"image": jnp.asarray(x), "label": jnp.array([3, 150])}
    step = jax.jit(make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10)))
    new_state, m = step(state, batch, jax.random.key(1))
    assert int(new_state.step) == 1
    assert np.isfinite(float(m["loss"])) and np.isfinite(float(m["grad_norm"]))
