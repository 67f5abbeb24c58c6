"""Weight import: reading files safely, mapping names and layouts, saving and overlaying."""

from __future__ import annotations

import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from wsolax.models.layers import ConvBN
from wsolax.weights import (WeightError, convert_torch_state_dict, load_state_dict, overlay,
                            save_converted)


class _Net(nn.Module):
    """conv(+BN) -> conv with bias -> GAP -> classifier; a new layer with no source counterpart."""

    @nn.compact
    def __call__(self, x, *, train=False):
        x = ConvBN(4, kernel=3, padding=1, name="stem")(x, train=train)
        x = nn.Conv(5, (1, 2), padding=0, name="proj")(x)
        x = nn.Conv(5, (1, 1), name="new")(x)
        return nn.Dense(3, name="classifier")(x.mean(axis=(1, 2)))


def _name(path):
    return {("stem", "conv"): "features.0", ("stem", "bn"): "features.1", ("proj",): "features.3",
            ("classifier",): "fc"}.get(tuple(path))


def _template():
    return jax.device_get(jax.jit(lambda k: _Net().init(k, jnp.zeros((1, 6, 6, 2))))(
        jax.random.key(0)))


def _state_dict(num_classes=3, rng=None):
    rng = rng or np.random.default_rng(0)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return {"features.0.weight": f(4, 2, 3, 3), "features.1.weight": f(4), "features.1.bias": f(4),
            "features.1.running_mean": f(4), "features.1.running_var": np.abs(f(4)) + 0.5,
            "features.1.num_batches_tracked": np.array(7, np.int64),
            "features.3.weight": f(5, 4, 1, 2), "features.3.bias": f(5),
            "fc.weight": f(num_classes, 5), "fc.bias": f(num_classes)}


def test_names_and_layouts_map_element_by_element():
    sd = _state_dict()
    out, report = convert_torch_state_dict(sd, _template(), _name, classifier=("classifier",))
    p, s = out["params"], out["batch_stats"]
    # OIHW -> HWIO: torch weight[o, i, kh, kw] is Flax kernel[kh, kw, i, o]
    for o, i, kh, kw in [(0, 0, 0, 0), (3, 1, 2, 0), (2, 0, 1, 2)]:
        assert p["stem"]["conv"]["kernel"][kh, kw, i, o] == sd["features.0.weight"][o, i, kh, kw]
    assert p["proj"]["kernel"][0, 1, 3, 4] == sd["features.3.weight"][4, 3, 0, 1]
    np.testing.assert_array_equal(p["proj"]["bias"], sd["features.3.bias"])
    assert p["classifier"]["kernel"][4, 2] == sd["fc.weight"][2, 4]  # Linear (out, in) -> (in, out)
    np.testing.assert_array_equal(p["stem"]["bn"]["scale"], sd["features.1.weight"])
    np.testing.assert_array_equal(p["stem"]["bn"]["bias"], sd["features.1.bias"])
    np.testing.assert_array_equal(s["stem"]["bn"]["mean"], sd["features.1.running_mean"])
    np.testing.assert_array_equal(s["stem"]["bn"]["var"], sd["features.1.running_var"])
    assert sorted(report.new_layers) == ["params/new/bias", "params/new/kernel"]
    assert report.ignored == ["features.1.num_batches_tracked"]
    assert not report.missing and not report.unused and not report.skipped
    assert len(report.loaded) == 9


def test_converted_forward_matches_torch_functional():
    sd = _state_dict()
    out, _ = convert_torch_state_dict(sd, _template(), _name, classifier=("classifier",))
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 2)).astype(np.float32)
    new = out["params"]["new"]
    t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731  (a writable copy)
    y = torch.nn.functional.conv2d(t(x).permute(0, 3, 1, 2), t(sd["features.0.weight"]), padding=1)
    y = torch.nn.functional.batch_norm(y, t(sd["features.1.running_mean"]),
                                       t(sd["features.1.running_var"]), t(sd["features.1.weight"]),
                                       t(sd["features.1.bias"]), training=False, eps=1e-5).relu()
    y = torch.nn.functional.conv2d(y, t(sd["features.3.weight"]), t(sd["features.3.bias"]))
    y = torch.nn.functional.conv2d(y, t(np.asarray(new["kernel"]).transpose(3, 2, 0, 1).copy()),
                                   t(np.asarray(new["bias"])))
    ref = torch.nn.functional.linear(y.mean(dim=(2, 3)), t(sd["fc.weight"]), t(sd["fc.bias"]))
    got = jax.jit(lambda v: _Net().apply(v, jnp.asarray(x)))(out)
    np.testing.assert_allclose(np.asarray(got), ref.numpy(), atol=1e-5)


def test_classifier_with_other_class_count_is_skipped_and_other_mismatches_refused():
    sd = _state_dict(num_classes=1000)
    sd["features.9.weight"] = np.zeros(3, np.float32)
    template = _template()
    out, report = convert_torch_state_dict(sd, template, _name, classifier=("classifier",))
    np.testing.assert_array_equal(out["params"]["classifier"]["kernel"],
                                  template["params"]["classifier"]["kernel"])
    assert len(report.skipped) == 2 and any("file (5, 1000)" in x for x in report.skipped)
    assert report.unused == ["features.9.weight"]
    bad = _state_dict()
    bad["features.3.weight"] = np.zeros((5, 4, 3, 3), np.float32)
    with pytest.raises(WeightError, match=r"features\.3\.weight has shape \(5, 4, 3, 3\)"):
        convert_torch_state_dict(bad, template, _name, classifier=("classifier",))


def test_missing_tensors_fail_unless_allowed():
    sd = _state_dict()
    del sd["features.1.running_var"]
    with pytest.raises(WeightError, match="features.1.running_var"):
        convert_torch_state_dict(sd, _template(), _name, classifier=("classifier",))
    _, report = convert_torch_state_dict(sd, _template(), _name, classifier=("classifier",),
                                         strict=False)
    assert report.missing == ["batch_stats/stem/bn/var <- features.1.running_var"]


def test_pth_is_read_weights_only_and_unwrapped(tmp_path):
    sd = _state_dict()
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": torch.from_numpy(np.asarray(v))
                                          for k, v in sd.items()}}
    torch.save(wrapped, tmp_path / "w.pth")
    got = load_state_dict(tmp_path / "w.pth")
    assert sorted(got) == sorted(sd)
    np.testing.assert_array_equal(got["features.0.weight"], sd["features.0.weight"])


class _Payload:  # an arbitrary object: only full unpickling can rebuild it
    def __init__(self):
        self.weight = torch.zeros(2)


def test_pickled_objects_are_refused_without_allow_pickle(tmp_path):
    torch.save({"state_dict": {"a.weight": torch.zeros(2)}, "extra": _Payload()}, tmp_path / "p.pth")
    with pytest.raises(WeightError, match="--allow-pickle"):
        load_state_dict(tmp_path / "p.pth")
    assert list(load_state_dict(tmp_path / "p.pth", allow_pickle=True)) == ["a.weight"]
    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightError, match="unknown weights format '.pkl'"):
        load_state_dict(tmp_path / "w.pkl")


def test_safetensors_read_without_torch(tmp_path):
    from safetensors.numpy import save_file

    sd = _state_dict()
    save_file({k: np.asarray(v) for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    got = load_state_dict(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(got["fc.weight"], sd["fc.weight"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(WeightError, match="not a readable safetensors"):
        load_state_dict(tmp_path / "bad.safetensors")


def test_saved_weights_overlay_a_fresh_init(tmp_path):
    converted, _ = convert_torch_state_dict(_state_dict(), _template(), _name,
                                            classifier=("classifier",))
    path = save_converted(converted, tmp_path / "c.safetensors", backbone="net")
    fresh_init = jax.device_get(jax.jit(lambda k: _Net().init(k, jnp.zeros((1, 6, 6, 2))))(
        jax.random.key(5)))
    out, fresh = overlay(fresh_init, path, backbone="net")
    np.testing.assert_array_equal(out["params"]["stem"]["conv"]["kernel"],
                                  converted["params"]["stem"]["conv"]["kernel"])
    assert fresh == []
    with pytest.raises(WeightError, match="converted for backbone 'net'.*builds 'other'"):
        overlay(fresh_init, path, backbone="other")


def test_batchnorm_matches_torch_in_training_including_running_statistics():
    from wsolax.models.layers import BatchNorm

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(4, 5, 3, 6)) * 3 + 1).astype(np.float32)
    scale, bias = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    mean0, var0 = rng.normal(size=6).astype(np.float32), rng.uniform(0.5, 2, 6).astype(np.float32)
    variables = {"params": {"scale": scale, "bias": bias},
                 "batch_stats": {"mean": mean0, "var": var0}}
    y, upd = jax.jit(lambda v: BatchNorm().apply(v, jnp.asarray(x), mutable=["batch_stats"]))(
        variables)
    rm, rv = torch.tensor(mean0), torch.tensor(var0)  # updated in place by torch
    ref = torch.nn.functional.batch_norm(torch.tensor(x).permute(0, 3, 1, 2), rm, rv,
                                         torch.tensor(scale), torch.tensor(bias), training=True,
                                         momentum=0.1, eps=1e-5)
    np.testing.assert_allclose(np.asarray(y), ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(upd["batch_stats"]["mean"]), rm.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(upd["batch_stats"]["var"]), rv.numpy(), rtol=1e-5)
