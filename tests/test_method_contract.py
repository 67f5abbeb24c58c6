"""The contract every registered method satisfies, parametrised over `registry.method_names()`:
a method gets these tests by registering (placed by tests/method_contract_configs.py); what is
particular to a method (its masks, losses, oracles) stays in its own test file.

Each method, on the tiny backbone at 32 px:
  * an unknown hyperparameter is refused, named by its config key;
  * a train step (objective and gradients) is a function of the key: the same key gives the same
    loss and gradients, jitted or not;
  * evaluation needs no key, is deterministic, gives logits and CAMs of the right shapes, and the
    CAMs of requested classes are those classes' CAMs; a transform is the identity there;
  * gradients are finite and reach the backbone and the head;
  * a bfloat16 model trains a step (finite loss, bfloat16 activations, float32 parameters);
  * 1 and 8 sharded devices train alike (float64, tests/method_sharding_worker.py).
"""

from __future__ import annotations

import functools
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from forced_devices import forced_devices_env
from method_contract_configs import BATCH, IMAGE, contract_methods, tiny_method_config

from wsolax import registry
from wsolax.models.wsol_model import init_key, init_variables
from wsolax.training.objectives import build_objective

ROOT = pathlib.Path(__file__).resolve().parents[1]
METHODS = contract_methods()


@functools.lru_cache(maxsize=None)
def _setup(name: str, dtype: str = "float32"):
    """(cfg, model, variables, batch, jitted loss-and-gradients) of `name`, built once per test
    session: the tests share one compilation per method and dtype."""
    cfg = tiny_method_config(name, dtype)
    model = registry.build_model(cfg)
    variables = init_variables(model, init_key(0), (1, IMAGE, IMAGE, 3))
    rng = np.random.default_rng(1)
    batch = {"image": jnp.asarray(rng.normal(size=(BATCH, IMAGE, IMAGE, 3)), jnp.float32),
             "label": jnp.asarray(rng.integers(0, cfg.data.num_classes, BATCH), jnp.int32)}
    loss_and_grads = _loss_and_grads(cfg, model, variables, batch)
    return cfg, model, variables, batch, jax.jit(loss_and_grads)


def _loss_and_grads(cfg, model, variables, batch):
    """key -> (loss, gradients) of one train step at the initial parameters."""
    objective = build_objective(cfg, steps_per_epoch=10)

    def loss_and_grads(key):
        def loss_of(params):
            loss, _ = objective(model, {**variables, "params": params}, batch, key, 0)
            return loss
        return jax.value_and_grad(loss_of)(variables["params"])

    return loss_and_grads


def test_the_registry_holds_the_benchmark_and_the_papers_methods():
    # Guards the parametrisation: a method that stops being found would silently lose its tests.
    assert {"adl", "dgdm", "dfm", "where_to_look"} <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_an_unknown_hyperparameter_is_named_by_its_config_key(name):
    cfg = tiny_method_config(name)
    cfg.model.methods[name] = {**cfg.model.methods.get(name, {}), "surely_not_a_field": 1}
    with pytest.raises(ValueError, match=rf"'model\.methods\.{name}\.surely_not_a_field' is not a "
                                         rf"hyperparameter of {name}; known: \["):
        registry.build_model(cfg)


@pytest.mark.parametrize("name", METHODS)
def test_a_train_step_is_a_function_of_its_key_jitted_or_not(name):
    cfg, model, variables, batch, step = _setup(name)
    key = jax.random.key(3)
    loss, grads = step(key)
    again, grads_again = step(jax.random.key(3))
    assert float(loss) == float(again)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Unjitted: the same computation op by op (float32 rounding differs by fusion).
    eager, grads_eager = _loss_and_grads(cfg, model, variables, batch)(key)
    np.testing.assert_allclose(float(eager), float(loss), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads_eager), jax.tree.leaves(grads)):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())


@pytest.mark.parametrize("name", METHODS)
def test_evaluation_needs_no_key_is_deterministic_and_gives_the_requested_cams(name):
    cfg, model, variables, batch, _ = _setup(name)
    k = cfg.data.num_classes
    apply = jax.jit(lambda v, x, c=None: model.apply(v, x, train=False, cam_classes=c))
    out = apply(variables, batch["image"])  # no rngs: evaluation draws nothing
    again = apply(variables, batch["image"])
    for key in ("logits", "cams"):
        np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(again[key]))
        assert np.isfinite(np.asarray(out[key])).all()
    assert out["logits"].shape == (BATCH, k)
    assert out["cams"].ndim == 4 and out["cams"].shape[0] == BATCH and out["cams"].shape[-1] == k
    classes = jnp.stack([batch["label"], (batch["label"] + 1) % k], axis=1)
    picked = apply(variables, batch["image"], classes)
    expected = np.take_along_axis(np.asarray(out["cams"]),
                                  np.asarray(classes)[:, None, None, :], axis=-1)
    np.testing.assert_allclose(np.asarray(picked["cams"]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(picked["logits"]), np.asarray(out["logits"]),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in METHODS if registry.get_method(n).transform])
def test_a_transform_is_the_identity_at_evaluation(name):
    cfg, _, _, batch, _ = _setup(name)
    selected = {s.method.name: s for s in registry.selected_methods(cfg.model)}[name]
    out = selected.method.transform(jax.random.key(0), batch, selected.hparams, train=False,
                                    num_classes=cfg.data.num_classes)
    assert set(out) == set(batch)
    for key in batch:
        np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(batch[key]))


@pytest.mark.parametrize("name", METHODS)
def test_gradients_are_finite_and_reach_the_backbone_and_the_head(name):
    _, _, _, _, step = _setup(name)
    loss, grads = step(jax.random.key(5))
    assert np.isfinite(float(loss))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    for part in ("backbone", "head"):
        norm = np.sqrt(sum(float(jnp.sum(jnp.square(g))) for g in jax.tree.leaves(grads[part])))
        assert norm > 0, f"no gradient reaches the {part}"


@pytest.mark.parametrize("name", METHODS)
def test_a_bfloat16_model_trains_a_step(name):
    _, model, variables, batch, step = _setup(name, "bfloat16")
    assert {x.dtype for x in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
    loss, grads = step(jax.random.key(5))
    assert np.isfinite(float(loss))
    assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in jax.tree.leaves(grads))
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, batch["image"])
    assert out["features"].dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(out["cams"], np.float32)).all()


def _sharded(*device_counts: int) -> list[dict]:
    """The worker's results for each device count, from one process with the most devices."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "method_sharding_worker.py"),
         *map(str, device_counts)],
        env=forced_devices_env(max(device_counts)), capture_output=True, text=True, cwd=ROOT,
        timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    return [results[str(n)] for n in device_counts]


@pytest.mark.slow
def test_every_method_trains_alike_on_eight_devices_and_one():
    # float64: the two reduction orders agree to rounding (see tests/test_sharding.py).
    one, eight = _sharded(1, 8)
    assert sorted(one) == sorted(eight) == sorted(METHODS)
    for name in METHODS:
        assert eight[name]["replicated_on"] == [8] and eight[name]["batch_shards"] == 8, name
        np.testing.assert_allclose(eight[name]["losses"], one[name]["losses"], rtol=1e-9,
                                   err_msg=name)
        np.testing.assert_allclose(eight[name]["param_sum"], one[name]["param_sum"], rtol=1e-9,
                                   err_msg=name)
