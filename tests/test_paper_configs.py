"""The paper-reproduction configs load, name valid stages and build the model they describe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
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


@pytest.mark.slow
def test_new_layers_start_as_wsolevaluation_initialises_them():
    """wsol/util.py initialize_weights, by hand: nn.Linear N(0, 0.01) with zero bias; VggCam's
    convs 'he' (Kaiming normal, fan-out, gain sqrt(2): std sqrt(2 / (3*3*1024)) for conv6,
    untruncated); InceptionCam's 'xavier' (uniform, limit sqrt(6 / (fan_in + fan_out)))."""
    def params_of(name, size):
        cfg = load_config(f"configs/{name}.py", ["--config.data.num_classes=50"])
        model = build_model(cfg)
        return jax.jit(lambda k: model.init({"params": k, "dropout": k},
                                            jnp.zeros((1, size, size, 3)), train=False))(
            init_key(0))["params"]

    vgg = params_of("cub_adl_vgg16", 32)
    fc = np.asarray(vgg["head"]["classifier"]["kernel"])
    assert fc.std() == pytest.approx(0.01, rel=0.05) and abs(fc.mean()) < 1e-3
    assert not np.asarray(vgg["head"]["classifier"]["bias"]).any()
    conv6 = np.asarray(vgg["backbone"]["wsol_conv6"]["kernel"])
    std = np.sqrt(2.0 / (3 * 3 * 1024))
    assert conv6.std() == pytest.approx(std, rel=0.01)
    assert np.abs(conv6).max() > 4.5 * std  # a plain normal, not one truncated at 2 std
    cfg = load_config("configs/wsolevaluation.py:cub,cam,inception_v3",
                      ["--config.data.num_classes=50"])
    model = build_model(cfg)
    inception = jax.jit(lambda k: model.init({"params": k, "dropout": k},
                                             jnp.zeros((1, 75, 75, 3)), train=False))(
        init_key(0))["params"]
    for i in (1, 2):
        kernel = np.asarray(inception["backbone"][f"wsol_head_conv{i}"]["kernel"])
        limit = np.sqrt(6.0 / (9 * kernel.shape[2] + 9 * kernel.shape[3]))
        assert np.abs(kernel).max() <= limit * (1 + 1e-6)  # float32 rounding of the bound
        assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)
    assert np.asarray(inception["head"]["classifier"]["kernel"]).std() == pytest.approx(
        0.01, rel=0.05)
