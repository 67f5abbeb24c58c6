"""The one method API (wsolax/methods/api.py, wsolax/registry.py): registration, selection by
config, hyperparameter checks, composition rules and the checkpoint stamp."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax import registry
from wsolax.checkpoint import _moved_keys, model_definition
from wsolax.config import ConfigError, base_config, load_config
from wsolax.methods.api import Method, make_hparams
from wsolax.models.wsol_model import init_key
from wsolax.training.objectives import build_objective, compose_objective
from wsolax.training.optim import make_optimizer
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step


@dataclasses.dataclass(frozen=True)
class _NoHparams:
    pass


def _cfg(**methods):
    c = base_config()
    for name, values in methods.items():
        c.model.methods[name] = values
    return c


def test_every_library_method_is_found_by_its_file_and_has_valid_defaults():
    names = registry.method_names()
    assert {"adl", "dgdm", "dfm", "where_to_look", "has", "cutmix"} <= set(names)
    assert "api" not in names and "placements" not in names
    for name in names:
        method = registry.get_method(name)
        assert method.name == name
        hparams = make_hparams(method, {})  # the paper's defaults pass their own checks
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(hparams, registry.method_hparams(name)[0], None)
    assert registry.method_hparams("adl") == ("drop_rate", "gamma", "per_sample")


def test_selection_by_inserts_and_by_section():
    c = _cfg(where_to_look={}, dgdm={"alpha": 0.1})
    c.model.inserts = (("stage3", "adl"),)
    selected = registry.selected_methods(c.model)
    # adl by its insert (no section: defaults), where_to_look by its section; dgdm has a section
    # but no insert, so it only sets (checked) hyperparameters.
    assert [s.method.name for s in selected] == ["adl", "where_to_look"]
    assert selected[0].hparams.gamma == 0.9
    c.model.methods.dgdm = {"alpah": 0.1}
    with pytest.raises(ValueError, match=r"'model\.methods\.dgdm\.alpah' is not a hyperparameter "
                                         r"of dgdm; known: \['alpha', "):
        registry.selected_methods(c.model)


@pytest.mark.parametrize("methods, inserts, head, message", [
    ({"foo": {}}, (), "gap_linear", r"unknown method 'foo'; known: \[.*'where_to_look'"),
    ({"where_to_look": {"fusion_wieght": 1.0}}, (), "gap_linear",
     r"'model\.methods\.where_to_look\.fusion_wieght' is not a hyperparameter"),
    ({"where_to_look": {"test_branch": "y"}}, (), "gap_linear",
     r"config key 'model\.methods\.where_to_look\.test_branch': must be 'x' or 'x_tilde'"),
    ({"where_to_look": {"patch_sizes": (4, 0)}}, (), "gap_linear",
     r"config key 'model\.methods\.where_to_look\.patch_sizes': must be positive"),
    ({}, (("stage3", "where_to_look"),), "gap_linear",
     r"method 'where_to_look' has no layer to insert"),
    ({}, (), "where_to_look", r"'where_to_look' is a method; select it with "
                              r"config\.model\.methods\.where_to_look = \{\}"),
    ({"where_to_look": {}}, (), "other", r"'other' and the methods \['where_to_look'\] each give "
                                         r"the head"),
])
def test_a_wrong_selection_is_refused_naming_the_key(methods, inserts, head, message):
    c = _cfg(**methods)
    c.model.inserts, c.model.head = inserts, head
    with pytest.raises(ValueError, match=message):
        registry.build_model(c)


def test_the_old_where_to_look_keys_are_pointed_to_their_new_place():
    with pytest.raises(ConfigError, match=r"'model\.wtl\.fusion_weight': it is now "
                                          r"'model\.methods\.where_to_look\.fusion_weight'"):
        load_config("configs/synthetic_cam.py", ["--config.model.wtl.fusion_weight=1.0"])
    cfg = load_config("configs/synthetic_cam.py", ["--config.model.methods.where_to_look={}"])
    assert [s.method.name for s in registry.selected_methods(cfg.model)] == ["where_to_look"]


def test_method_specs_are_checked(monkeypatch):
    with pytest.raises(TypeError, match="dataclass"):
        Method(name="x", hparams=dict, loss=lambda hp, n: None)
    with pytest.raises(ValueError, match="uses no hook"):
        Method(name="x", hparams=_NoHparams)
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    registry.register_method(Method(name="x", hparams=_NoHparams, loss=lambda hp, n: None))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_method(Method(name="x", hparams=_NoHparams, loss=lambda hp, n: None))
    with pytest.raises(ValueError, match="registered twice"):  # a library method's name
        registry.register_method(Method(name="adl", hparams=_NoHparams, loss=lambda hp, n: None))


def test_two_training_forwards_do_not_compose(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    for name in ("f1", "f2"):
        registry.register_method(Method(name=name, hparams=_NoHparams,
                                        forward=lambda *a, **k: None))
    c = _cfg(f1={}, f2={})
    with pytest.raises(ValueError, match=r"methods \['f1', 'f2'\] each define the training"):
        compose_objective(registry.selected_methods(c.model))


def test_where_to_look_transform_makes_the_pair_and_is_the_identity_at_evaluation():
    method = registry.get_method("where_to_look")
    hp = make_hparams(method, {"patch_sizes": (4,)})
    batch = {"image": jax.random.normal(jax.random.key(0), (2, 8, 8, 3)), "label": jnp.zeros(2)}
    assert method.transform(jax.random.key(1), batch, hp, train=False, num_classes=3) is batch
    out = method.transform(jax.random.key(1), batch, hp, train=True, num_classes=3)
    # The two views partition the image: each pixel is in exactly one of them.
    np.testing.assert_array_equal(np.asarray(out["image"] + out["image_tilde"]),
                                  np.asarray(batch["image"]))
    assert out["label"] is batch["label"]


def test_the_stamp_holds_the_selected_methods_and_all_their_hyperparameters():
    plain = model_definition(_cfg(dgdm={"alpha": 0.1}))
    assert plain["model.methods"] == [] and not any(k.startswith("model.methods.") for k in plain)
    wtl = model_definition(_cfg(where_to_look={"fusion_weight": 1.0}))
    assert wtl["model.methods"] == ["where_to_look"]
    assert wtl["model.methods.where_to_look.fusion_weight"] == 1.0
    assert wtl["model.methods.where_to_look.patch_sizes"] == [16, 32, 44, 56]  # a default
    # A stamp written while Where to Look was the head "where_to_look" with settings in model.wtl
    # reads as today's keys.
    old = {k: v for k, v in wtl.items() if not k.startswith("model.methods")}
    old["model.head"] = "where_to_look"
    old.update({f"model.wtl.{k.rsplit('.', 1)[1]}": v for k, v in wtl.items()
                if k.startswith("model.methods.where_to_look.")})
    moved = _moved_keys(old)
    assert moved == {k: v for k, v in wtl.items() if k != "model.methods"}


def _shifted_labels_method(seen: list):
    """A transform that records the class count it is given and replaces the labels by the
    one-hot distribution of the next class (label + 1 mod K)."""
    def transform(key, batch, hp, *, train, num_classes):
        del key, hp
        seen.append(num_classes)
        if not train:
            return batch
        shifted = jax.nn.one_hot((batch["label"] + 1) % num_classes, num_classes)
        return {**batch, "label": shifted}
    return Method(name="shift", hparams=_NoHparams, transform=transform)


@pytest.mark.slow
def test_transforms_get_the_class_count_and_the_accuracy_uses_the_original_labels(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    seen = []
    registry.register_method(_shifted_labels_method(seen))
    c = _cfg(shift={})
    c.model.width, c.data.num_classes = 4, 6
    model = registry.build_model(c)
    tx, _ = make_optimizer(c.optim, 10, 100)
    state = jax.jit(lambda k: init_state(model, tx, k, (1, 16, 16, 3)))(init_key(0))
    images = jax.random.normal(jax.random.key(0), (6, 16, 16, 3))
    # The logits do not depend on the labels: computed first, they give labels that the model
    # predicts (accuracy 1 against them) and whose shifted classes it does not (accuracy 0).
    _, dropout_key = jax.random.split(jax.random.fold_in(jax.random.key(1), 0))
    out, _ = jax.jit(lambda v, x, k: model.apply(v, x, train=True, rngs={"dropout": k},
                                                 mutable=["batch_stats"]))(
        {"params": state.params, "batch_stats": state.batch_stats}, images, dropout_key)
    logits = np.asarray(out["logits"], np.float64)
    labels = logits.argmax(1)
    batch = {"image": images, "label": jnp.asarray(labels, jnp.int32)}
    _, m = jax.jit(make_train_step(model, tx, build_objective(c)))(state, batch, jax.random.key(1))
    assert seen == [6]  # build_objective passes cfg.data.num_classes
    # By hand: the loss is the cross-entropy of the *shifted* distributions; the accuracy
    # compares the argmax with the *original* labels (the batch before the transforms).
    shifted = (labels + 1) % 6
    logz = np.log(np.exp(logits).sum(1))
    ce = np.mean(logz - logits[np.arange(6), shifted])
    assert float(m["loss"]) == pytest.approx(ce, rel=1e-5)
    assert float(m["accuracy"]) == 1.0
    # compose_objective passes what it is given (traced only).
    objective = compose_objective(registry.selected_methods(c.model), 0, 6)
    jax.eval_shape(lambda v: objective(model, v, batch, jax.random.key(2)),
                   {"params": state.params, "batch_stats": state.batch_stats})
    assert seen[-1] == 6
