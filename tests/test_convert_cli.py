"""`python -m wsolax.convert` end to end: a torchvision-layout file -> converted weights -> a
training state that starts from them."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from test_resnet import _torch_state_dict  # the independent torchvision-layout weights

from wsolax.cli import convert_main
from wsolax.config import load_config
from wsolax import sharding
from wsolax.training.loop import build_training, start_from_converted

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

SMALL = ["--config.model.backbone=resnet18", "--config.data.crop_size=32",
         "--config.data.resize_size=36", "--config.train.batch_size=8"]


def test_convert_then_start_training_from_the_file(tmp_path, capsys):
    sd = _torch_state_dict("resnet18", num_classes=1000)
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, tmp_path / "r18.pth")
    out = tmp_path / "converted" / "r18.safetensors"
    code = convert_main(["--config", "configs/synthetic_cam.py", *SMALL,
                         "--weights", str(tmp_path / "r18.pth"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert out.is_file()
    # ImageNet's 1000-way fc does not fit the 10-class dataset: skipped, reported.
    assert "skipped (class count differs): 2" in printed and "fc.weight" in printed
    assert "MISSING" not in printed and "unused" not in printed

    cfg = load_config("configs/synthetic_cam.py", [*SMALL, f"--config.model.init_from={out}"])
    mesh = sharding.data_mesh(jax.devices()[:1])
    _, tx, _, state, _, _ = build_training(cfg, 64, mesh)
    state = start_from_converted(cfg, state, tx, mesh)
    kernel = np.asarray(state.params["backbone"]["layer2_0"]["conv1"]["conv"]["kernel"])
    np.testing.assert_array_equal(kernel, sd["layer2.0.conv1.weight"].transpose(2, 3, 1, 0))
    var = np.asarray(state.batch_stats["backbone"]["conv1"]["bn"]["var"])
    np.testing.assert_array_equal(var, sd["bn1.running_var"])


def test_convert_refuses_what_it_cannot_do(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    code = convert_main(["--config", "configs/synthetic_cam.py", "--weights", str(weights),
                         "--out", str(tmp_path / "o.safetensors")])
    assert code == 2
    assert "backbone 'tiny' has no ImageNet weight layout" in capsys.readouterr().err
    code = convert_main(["--config", "configs/synthetic_cam.py", *SMALL,
                         "--weights", str(tmp_path / "missing.pth"), "--out", "x.safetensors"])
    assert code == 2 and "weights file not found" in capsys.readouterr().err
