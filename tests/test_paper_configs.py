"""The paper-reproduction configs load, name valid stages and build the model they describe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from wsolax.config import load_config
from wsolax.registry import build_model
from wsolax.training.optim import param_groups
from wsolax.models.wsol_model import init_key

PAPER = {  # config -> (backbone, method, stages, classes)
    "cub_adl_vgg16": ("vgg16_gap", "adl", ("pool3", "pool4", "conv5_3"), 200),
    "cub_adl_resnet50": ("se_resnet50", "adl", ("layer3_0", "layer4_0", "layer4"), 200),
    "ilsvrc_adl_resnet50": ("se_resnet50", "adl", ("layer3_0", "layer4_0", "layer4"), 1000),
    "cub_dgdm_vgg16": ("vgg16_gap", "dgdm", ("pool1", "pool2", "pool3", "pool4", "conv5_3"), 200),
    "cars_dgdm_resnet18": ("resnet18", "dgdm", ("layer3_0", "layer4_0", "layer4"), 196),
    "cub_dfm_resnet50": ("resnet50", "dfm", ("layer3_0", "layer4"), 200),
    "openimages_cam_resnet50": ("resnet50", None, (), 100),
    "cub_wtl_resnet50": ("resnet50", None, (), 200),
    "ilsvrc_wtl_resnet50": ("resnet50", None, (), 1000),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_config_builds_its_model_with_14x14_maps(name):
    backbone, method, stages, classes = PAPER[name]
    cfg = load_config(f"configs/{name}.py")
    assert cfg.model.backbone == backbone and cfg.data.num_classes == classes
    assert cfg.model.inserts == tuple((s, method) for s in stages)
    assert (cfg.data.resize_size, cfg.data.crop_size, cfg.train.batch_size) == (256, 224, 32)
    model = build_model(cfg)
    # Shapes only (no compile): also proves every configured stage exists in the backbone.
    out, variables = jax.eval_shape(lambda k: model.init_with_output(
        {"params": k, "dropout": k}, jnp.zeros((1, 224, 224, 3)), train=True,
        mutable=["params", "batch_stats"]), init_key(0))
    assert out["features"].shape[1:3] == (14, 14)
    assert out["logits"].shape == (1, classes)
    groups = jax.tree.leaves(param_groups(variables["params"], cfg.optim.new_layer_prefixes))
    assert "new" in groups and "backbone" in groups


def test_dataset_paths_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("WSOLAX_CUB_METADATA", "/elsewhere/meta")
    monkeypatch.setenv("WSOLAX_CUB_IMAGES", "/elsewhere/images")
    cfg = load_config("configs/cub_dfm_resnet50.py")
    assert (cfg.data.metadata_root, cfg.data.image_root) == ("/elsewhere/meta", "/elsewhere/images")


def test_vgg_new_conv_learns_ten_times_faster():
    cfg = load_config("configs/cub_adl_vgg16.py")
    model = build_model(cfg)
    variables = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, 64, 64, 3)), train=False),
                               init_key(0))
    groups = param_groups(variables["params"], cfg.optim.new_layer_prefixes)
    assert groups["backbone"]["wsol_conv6"]["kernel"] == "new"
    assert groups["backbone"]["conv1_1"]["kernel"] == "backbone"
    assert cfg.optim.new_layer_lr_mult == 10.0


def test_datasets_with_many_boxes_per_image_pad_to_more():
    assert load_config("configs/ilsvrc_adl_resnet50.py").data.max_boxes == 64
    assert load_config("configs/openimages_cam_resnet50.py").data.max_boxes == 64
    assert load_config("configs/cub_adl_resnet50.py").data.max_boxes == 4
