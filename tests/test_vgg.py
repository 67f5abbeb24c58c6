"""VGG16-GAP: numerical parity with an independent torch.nn.functional reference on a torchvision
`vgg16` state dict (random weights), plus sizes, stage names and weight-name mapping."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backbone_testing import backbone_config, numpy_variables, torch_one_thread  # noqa: F401  (autouse fixture)

from wsolax.models import vgg
from wsolax.registry import backbone_module, build_model
from wsolax.models.wsol_model import init_key
from wsolax.weights import convert_torch_state_dict

# Numerically sensitive: CI runs these again with XLA capped at AVX2 (.ci/run).
pytestmark = pytest.mark.numerics

NUM_CLASSES = 7
# torchvision's vgg16 `features`: 'M' = 2x2/2 max pool, numbers = 3x3 conv (+ReLU) channels.
TV_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
CLASSIFIER_SHAPES = {"classifier.0.weight": (4096, 512 * 7 * 7), "classifier.0.bias": (4096,),
                     "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
                     "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}


def torchvision_spec():
    """(name, shape) of every tensor of torchvision's vgg16 state dict, and the features layout."""
    spec, layout, index, cin = [], [], 0, 3
    for v in TV_CFG:
        if v == "M":
            layout.append(("pool", index))
            index += 1
        else:
            spec += [(f"features.{index}.weight", (v, cin, 3, 3)), (f"features.{index}.bias", (v,))]
            layout.append(("conv", index))
            index += 2  # conv, ReLU
            cin = v
    spec += list(CLASSIFIER_SHAPES.items())
    return spec, layout


def random_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    spec, _ = torchvision_spec()
    sd = {}
    for name, shape in spec:
        if name.startswith("classifier."):
            # Never read by the WSOL model (removed layers): a zero-stride view keeps the 400 MB
            # FC weights out of memory while the names and shapes stay those of the real file.
            sd[name] = np.broadcast_to(np.float32(0), shape)
        elif name.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            sd[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            sd[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return sd


def reference_forward(sd, x_nchw, conv6_w, conv6_b, fc_w, fc_b, large):
    """VGG16-GAP in torch.nn.functional: no pool5 (nor pool4 if large), conv6 1024, GAP, FC."""
    _, layout = torchvision_spec()
    x = torch.from_numpy(x_nchw)
    pools = 0
    for kind, i in layout:
        if kind == "conv":
            x = F.relu(F.conv2d(x, torch.from_numpy(sd[f"features.{i}.weight"]),
                                torch.from_numpy(sd[f"features.{i}.bias"]), padding=1))
        else:
            pools += 1
            if pools == 5 or (pools == 4 and large):
                continue
            x = F.max_pool2d(x, kernel_size=2, stride=2)
    x = F.relu(F.conv2d(x, torch.from_numpy(conv6_w), torch.from_numpy(conv6_b), padding=1))
    logits = F.linear(x.mean(dim=(2, 3)), torch.from_numpy(fc_w), torch.from_numpy(fc_b))
    return x.numpy(), logits.numpy()



def _cfg(**model):
    return backbone_config("vgg16_gap", NUM_CLASSES, **model)


@pytest.fixture(scope="module")
def state_dict():
    return random_state_dict()



X = np.random.default_rng(1).standard_normal((2, 48, 48, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def converted_and_report(state_dict):
    """Converted variables; the tree is the same with and without large_feature_map."""
    variables = numpy_variables(build_model(_cfg()), X)
    return convert_torch_state_dict(state_dict, variables, backbone_module("vgg16_gap").torch_name)


@pytest.mark.parametrize("large", [False, True])
def test_parity_with_torch_reference(state_dict, converted_and_report, large):
    model = build_model(_cfg(large_feature_map=large))
    x = X
    converted, report = converted_and_report

    assert report.missing == [] and report.skipped == [] and report.ignored == []
    assert sorted(report.unused) == sorted(CLASSIFIER_SHAPES)
    assert sorted(report.new_layers) == sorted(
        f"params/{m}/{leaf}" for m in ("backbone/wsol_conv6", "head/classifier")
        for leaf in ("kernel", "bias"))
    assert len(report.loaded) == 26  # 13 convs x (weight, bias)

    out = jax.jit(lambda v: model.apply(v, x, train=False))(converted)
    p = converted["params"]
    conv6_w = np.array(p["backbone"]["wsol_conv6"]["kernel"]).transpose(3, 2, 0, 1).copy()
    conv6_b = np.array(p["backbone"]["wsol_conv6"]["bias"])
    fc_w = np.array(p["head"]["classifier"]["kernel"]).T.copy()
    fc_b = np.array(p["head"]["classifier"]["bias"])
    ref_feat, ref_logits = reference_forward(state_dict, x.transpose(0, 3, 1, 2), conv6_w, conv6_b,
                                             fc_w, fc_b, large)
    feat = np.asarray(out["features"]).transpose(0, 3, 1, 2)
    side = 6 if large else 3  # 48 px: stride 8 (large) or 16
    assert feat.shape == ref_feat.shape == (2, 1024, side, side)
    feat_err = float(np.abs(feat - ref_feat).max())
    logit_err = float(np.abs(np.asarray(out["logits"]) - ref_logits).max())
    print(f"vgg16_gap large={large}: max|features err|={feat_err:.2e} "
          f"max|logits err|={logit_err:.2e} (feature scale {np.abs(ref_feat).max():.2f})")
    assert feat_err <= 1e-4 and logit_err <= 1e-4
    assert np.abs(ref_feat).max() > 0.1  # activations did not vanish


@pytest.mark.parametrize("large,side", [(False, 14), (True, 28)])
def test_feature_map_size_at_224(large, side):
    model = build_model(_cfg(large_feature_map=large))
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    variables = jax.eval_shape(lambda k: model.init(k, jnp.zeros(x.shape), train=False),
                               init_key(0))
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert out["features"].shape == (1, side, side, 1024)
    assert out["logits"].shape == (1, NUM_CLASSES)


class _Probe(nn.Module):
    """An inserted layer with a parameter, so the param tree shows where it was applied."""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train):
        return x * self.param("scale", nn.initializers.ones, ())


@pytest.mark.parametrize("large", [False, True])
def test_every_stage_is_reached_and_inserts_have_no_torch_name(large):
    inserts = tuple((s, _Probe) for s in vgg.STAGES)
    backbone = vgg.build_backbone("vgg16_gap", _cfg(large_feature_map=large).model, inserts,
                                  jnp.float32)
    params = jax.eval_shape(lambda k: backbone.init(k, jnp.zeros((1, 32, 32, 3)), train=False),
                            init_key(0))["params"]
    expected = {f"{s}_insert{i}" for i, s in enumerate(vgg.STAGES)}
    assert expected <= set(params)
    for name in expected:
        assert vgg.torch_name(("backbone", name)) is None
    assert "pool4" in vgg.STAGES and "conv6" in vgg.STAGES


def test_torch_names():
    assert vgg.torch_name(("backbone", "conv1_1")) == "features.0"
    assert vgg.torch_name(("backbone", "conv4_3")) == "features.21"
    assert vgg.torch_name(("backbone", "conv5_3")) == "features.28"
    assert vgg.torch_name(("backbone", "wsol_conv6")) is None
    assert vgg.torch_name(("head", "classifier")) is None
    assert vgg.torch_name(("backbone", "pool3_insert0")) is None


def test_adl_insert_builds_and_unknown_stage_is_named():
    model = build_model(_cfg(inserts=(("pool3", "adl"), ("pool4", "adl"), ("conv5_3", "adl"))))
    jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False), init_key(0))
    bad = build_model(_cfg(inserts=(("pool5", "adl"),)))
    with pytest.raises(ValueError, match="'pool5'"):
        jax.eval_shape(lambda k: bad.init(k, jnp.zeros((1, 32, 32, 3)), train=False), init_key(0))
