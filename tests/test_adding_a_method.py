"""docs/adding-a-method.md is true: its method files, registered through the public API, and its
config lines train a step on the tiny model and do what the page says."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsolax import registry
from wsolax.config import base_config
from wsolax.models.wsol_model import init_key
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"


def _blocks() -> list[tuple[str, str]]:
    """(first comment line, code) of every python block of the page."""
    found = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return [(code.splitlines()[0].removeprefix("# ").strip(), code) for code in found]


def _method_files() -> dict[str, str]:
    return {Path(head).stem: code for head, code in _blocks() if head.startswith("wsolax/methods/")}


def _config_blocks() -> list[str]:
    return [code for head, code in _blocks() if head == "config"]


@pytest.fixture
def doc_methods(monkeypatch):
    """The page's methods, each run as its own module and registered with register_method."""
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    methods = {}
    for name, code in _method_files().items():
        module = types.ModuleType(f"doc_method_{name}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(code, f"{DOC}:{name}", "exec"), module.__dict__)  # noqa: S102
        methods[name] = registry.register_method(module.METHOD)
    return methods


def _config(block: str):
    c = base_config()
    c.model.width = 4
    c.data.num_classes = 5
    exec(block, {"c": c})  # noqa: S102
    return c


def _one_step(cfg, batch):
    model = registry.build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    state = init_state(model, tx, init_key(0), (1, 32, 32, 3))
    step = jax.jit(make_train_step(model, tx, build_objective(cfg, steps_per_epoch=10)))
    new_state, metrics = step(state, batch, jax.random.key(1))
    return model, state, new_state, metrics


def _batch():
    return {"image": jax.random.normal(jax.random.key(0), (4, 32, 32, 3)),
            "label": jnp.array([0, 1, 2, 3])}


def test_the_page_has_the_examples_it_describes():
    assert set(_method_files()) == {"importance", "cam_l1", "gaussian_noise"}
    assert len(_config_blocks()) == 2
    # The examples are not library methods: the page says where they would go.
    assert not set(_method_files()) & set(registry.method_names())


def test_the_inserted_layer_example_trains_and_is_the_identity_at_evaluation(doc_methods):
    cfg = _config(_config_blocks()[0])
    assert registry.method_hparams("importance") == ("temperature",)
    model, state, new_state, metrics = _one_step(cfg, _batch())
    assert np.isfinite(float(metrics["loss"])) and int(new_state.step) == 1
    assert model.backbone.inserts[0][1].keywords["temperature"] == 0.5
    plain_cfg = base_config()
    plain_cfg.model.width, plain_cfg.data.num_classes = 4, 5
    plain = registry.build_model(plain_cfg)
    x = _batch()["image"]
    variables = {"params": state.params, "batch_stats": state.batch_stats}

    def features(m, train):
        return m.apply(variables, x, train=train, mutable=["batch_stats"])[0]["features"]

    np.testing.assert_array_equal(np.asarray(features(model, False)),
                                  np.asarray(features(plain, False)))
    assert not np.allclose(np.asarray(features(model, True)), np.asarray(features(plain, True)))
    # The page quotes the error a typo gives.
    cfg.model.methods.importance = {"temprature": 0.5}
    quoted = re.search(r"`(config key 'model\.methods\.importance\.temprature'[^`]*)`",
                       DOC.read_text().replace("\n", " "))[1]
    with pytest.raises(ValueError) as info:
        registry.build_model(cfg)
    assert str(info.value) == quoted


def test_the_objective_examples_add_their_term_and_transform_the_input(doc_methods):
    cfg = _config(_config_blocks()[1])
    model, state, _, m = _one_step(cfg, _batch())
    assert float(m["loss_cam_l1"]) > 0
    # The loss is CE + 0.1 x L1 of the forward on the *noisy* images: recompute it by hand with
    # the key the step gives the transform.
    batch = _batch()
    key = jax.random.fold_in(jax.random.key(1), 0)
    transform_key, dropout_key = jax.random.split(key)
    noisy = batch["image"] + 0.1 * jax.random.normal(transform_key, batch["image"].shape)
    out, _ = model.apply({"params": state.params, "batch_stats": state.batch_stats}, noisy,
                         train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], batch["label"]).mean()
    cams = jnp.take_along_axis(out["cams"], batch["label"][:, None, None, None], axis=-1)
    l1 = jnp.mean(jnp.abs(cams))
    assert float(m["loss_cam_l1"]) == pytest.approx(float(l1), rel=1e-5)
    assert float(m["loss"]) == pytest.approx(float(ce + 0.1 * l1), rel=1e-5)
    # The value check names the key.
    cfg.model.methods.cam_l1.weight = -1.0
    with pytest.raises(ValueError, match=r"config key 'model\.methods\.cam_l1\.weight': must be"):
        registry.build_model(cfg)
