"""python -m wsolax.pretrain: train on the whole-objects set, export the backbone, checksum it;
and the embedded benchmark's configs that fine-tune from it."""

import json

import jax
import numpy as np
import pytest
from flax import traverse_util
from safetensors.numpy import load_file

from wsolax.config import load_config
from wsolax.registry import build_model
from wsolax.pretrain import main as pretrain_main
from wsolax.pretrain import tensors_sha256
from wsolax.models.wsol_model import init_key
from wsolax.weights import overlay

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

TINY = ["--config.data.synthetic.image_size=32", "--config.data.resize_size=36",
        "--config.data.crop_size=32", "--config.data.synthetic.num_train=32",
        "--config.data.synthetic.num_val=16", "--config.data.num_threads=1",
        "--config.model.width=4", "--config.train.batch_size=16", "--config.train.epochs=1",
        "--config.train.progress_bar=False", "--config.eval.num_overlays=0"]


def test_pretraining_is_deterministic_and_its_backbone_starts_a_benchmark_run(tmp_path, capsys):
    outs = []
    for run in ("a", "b"):  # two workdirs, one dataset
        out = tmp_path / f"{run}.safetensors"
        argv = ["--config", "configs/pretrain_objects.py:runlocal", "--workdir", str(tmp_path / run),
                "--out", str(out), f"--config.data.root={tmp_path / 'objects'}", *TINY]
        assert pretrain_main(argv) == 0
        record = json.loads((tmp_path / run / "pretrain.json").read_text())
        assert record["tensors_sha256"] == tensors_sha256(out) and record["steps"] == 2
        assert 0 <= record["val_top1_cls"] <= 100
        outs.append(out)
    assert tensors_sha256(outs[0]) == tensors_sha256(outs[1])
    tensors = load_file(str(outs[0]))
    assert tensors and all(k.split("/")[1] == "backbone" for k in tensors)  # no head

    # The benchmark config fine-tunes from such a file: every backbone tensor loaded, the head new.
    cfg = load_config("configs/synthetic_cam.py:finegrained", [
        "--config.model.width=4", f"--config.model.init_from={outs[0]}"])
    assert cfg.data.crop_size == 96 and cfg.optim.new_layer_lr_mult == 10.0
    model = build_model(cfg)
    variables = jax.jit(lambda k: model.init(k, np.zeros((1, 96, 96, 3), np.float32),
                                             train=False))(init_key(0))
    loaded, fresh = overlay(jax.device_get(variables), cfg.model.init_from, backbone="tiny")
    assert fresh and all(k.startswith("params/head/") for k in fresh)
    flat = traverse_util.flatten_dict(loaded, sep="/")
    for key, value in tensors.items():
        np.testing.assert_array_equal(np.asarray(flat[key]), value)


def test_benchmark_variants_are_named_and_exclusive():
    fine = load_config("configs/synthetic_adl.py:finegrained")
    scratch = load_config("configs/synthetic_adl.py:finegrained,scratch")
    assert fine.workdir.endswith("_finegrained") and scratch.workdir.endswith("_finegrained_scratch")
    assert fine.model.init_from and not scratch.model.init_from
    assert fine.data.synthetic.image_size == 96 and fine.data.synthetic.stripe_scale == 2.0
    assert fine.model.inserts == scratch.model.inserts == (("stage3", "adl"), ("stage4", "adl"))
    assert load_config("configs/synthetic_dgdm.py:finegrained").model.methods.dgdm.block_size == 3
    wtl = load_config("configs/synthetic_wtl.py:finegrained").model.methods.where_to_look
    assert wtl.patch_sizes == (7, 14, 19, 24)
    with pytest.raises(ValueError, match="exclude each other"):
        load_config("configs/synthetic_cam.py:finegrained,finetune")
    with pytest.raises(ValueError, match="goes with 'finegrained'"):
        load_config("configs/synthetic_cam.py:scratch")
