"""Which parameters learn at the new-layer rate, for every method x backbone, under the rule each
protocol writes once (docs/methods.md, "Which layers are new").

The expectations come from outside the prefixes that implement them:
* the embedded benchmark (tiny backbone, `configs/synthetic_<method>.py:finegrained`): a parameter
  is new iff the pretrained backbone file (`weights/pretrain_objects_tiny16.safetensors`) lacks it;
* the CVPR'20 benchmark's models (`configs/wsolevaluation.py`): its main.py's rule on the names its
  own state dicts use (on VGG16 / InceptionV3 every name outside its feature patterns is x10, on
  ResNet50 only the names holding 'layer4.' or 'fc.');
* the paper configs (`configs/_paper.py`): main.py's rule on the torchvision names the ImageNet
  weights use, and a parameter those weights lack (wsolax's heads, inserted layers) is new.
A method whose new parameter falls outside the rule fails here.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors import safe_open

from wsolax.config import load_config
from wsolax.models.wsol_model import init_key
from wsolax.registry import build_model, method_names
from wsolax.training.optim import param_groups
from wsolax.weights.layouts import torch_name_for

ROOT = Path(__file__).resolve().parents[1]
CONFIG_OF = {"where_to_look": "wtl"}  # method name -> configs/synthetic_<name>.py
MAIN_PY_FEATURES = {"vgg16": ["features."], "resnet50": ["layer4.", "fc."],
                    "inception_v3": ["Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"]}


def _groups(cfg, size):
    model = build_model(cfg)
    params = jax.eval_shape(lambda k: model.init({"params": k, "dropout": k},
                                                 np.zeros((1, size, size, 3), np.float32),
                                                 train=False), init_key(0))["params"]
    groups = param_groups(params, tuple(cfg.optim.new_layer_prefixes))
    return [(tuple(str(getattr(k, "key", k)) for k in path), group)
            for path, group in jax.tree_util.tree_flatten_with_path(groups)[0]]


def test_every_method_has_an_embedded_benchmark_config():
    for name in method_names():
        assert (ROOT / "configs" / f"synthetic_{CONFIG_OF.get(name, name)}.py").is_file(), name


@pytest.mark.parametrize("method", ["cam"] + sorted(CONFIG_OF.get(n, n) for n in method_names()))
def test_embedded_benchmark_new_iff_the_pretrained_backbone_lacks_it(method):
    cfg = load_config(f"configs/synthetic_{method}.py:finegrained")
    assert cfg.optim.new_layer_lr_mult == 10.0
    with safe_open(str(ROOT / cfg.model.init_from), "numpy") as f:
        pretrained = set(f.keys())
    new = []
    for keys, group in _groups(cfg, cfg.data.crop_size):
        expected = "backbone" if "params/" + "/".join(keys) in pretrained else "new"
        assert group == expected, (method, keys, group)
        new.append(keys) if group == "new" else None
    assert new and all(k[0] == "head" or "_insert" in k[1] for k in new), new
    if method == "spg":  # its two taps are inserted after stage3 and stage4
        taps = {k[1].partition("_insert")[0] for k in new if k[0] == "backbone"}
        assert taps == {"stage3", "stage4"}


ARCHITECTURES = ("vgg16", "resnet50", "inception_v3")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("method", ["cam", "adl", "has", "cutmix", "acol"])
def test_wsolevaluation_configs_follow_its_main_py(method, arch):
    """SPG's three: tests/test_spg_wsolevaluation.py, on the same rule."""
    cfg = load_config(f"configs/wsolevaluation.py:cub,{method},{arch}",
                      ["--config.data.num_classes=5"])
    name_of = torch_name_for(cfg, "wsolevaluation")
    for keys, group in _groups(cfg, 64 if arch == "inception_v3" else 32):
        tname = name_of(keys[:-1])
        assert tname is not None, keys
        # main.py matches substrings of parameter names ("fc.weight"): the module prefix + "."
        matches = any(p in tname + "." for p in MAIN_PY_FEATURES[arch])
        fast = matches if arch == "resnet50" else not matches
        assert group == ("new" if fast else "backbone"), (method, arch, keys, tname)


PAPER_CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py")
                       if "_paper.paper_config(" in p.read_text() and p.stem != "wsolevaluation")


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_follow_main_py_on_torchvision_names(name):
    cfg = load_config(f"configs/{name}.py", ["--config.data.num_classes=5"])
    name_of = torch_name_for(cfg, "torchvision")
    resnet = cfg.model.backbone.startswith(("resnet", "se_resnet"))
    for keys, group in _groups(cfg, 64):
        tname = name_of(keys[:-1]) if keys[0] == "backbone" else None
        if tname is None:  # not in the ImageNet weights: a layer WSOL adds
            expected = "new"
        elif resnet:
            expected = "new" if (tname + ".").startswith(("layer4.", "fc.")) else "backbone"
        else:
            expected = "backbone" if (tname + ".").startswith("features.") else "new"
        assert group == expected, (name, keys, tname)
