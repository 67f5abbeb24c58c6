"""docs/paper_configs.md's table states what each paper config loads (lr, batch, epochs, decay,
weight decay, crop), and names every paper config there is."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path

import pytest

from wsolax.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "paper_configs.md"
COLUMNS = ("config", "lr (backbone / new)", "batch", "epochs", "schedule", "weight decay", "crop")


def _table_rows():
    """The rows of the table whose header starts with `| config |`, as dicts keyed by header."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| config |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return header, rows


def _specs(cell):
    """`wsolevaluation.py:cub,cam/adl,vgg16` -> its config paths (slashes list alternatives)."""
    spec = cell.strip("`")
    path, _, arg = spec.partition(":")
    if not arg:
        return [f"configs/{path}"]
    choices = [part.split("/") for part in arg.split(",")]
    return [f"configs/{path}:{','.join(combo)}" for combo in itertools.product(*choices)]


def _expected(row):
    backbone_lr, new_lr = (float(v) for v in row["lr (backbone / new)"].split("/"))
    decay = re.fullmatch(r"×0\.1 every (\d+)", row["schedule"])
    assert decay, row["schedule"]
    return {"lr": backbone_lr, "new_lr": new_lr, "batch": int(row["batch"]),
            "epochs": int(row["epochs"]), "decay_epochs": int(decay.group(1)),
            "weight_decay": float(row["weight decay"]), "crop": int(row["crop"])}


def _loaded(path):
    c = load_config(path)
    o = c.optim
    return {"lr": o.lr, "new_lr": o.lr * o.new_layer_lr_mult, "batch": c.train.batch_size,
            "epochs": c.train.epochs, "decay_epochs": o.decay_epochs,
            "weight_decay": o.weight_decay, "crop": c.data.crop_size,
            "step": (o.schedule, o.decay_factor)}


def _config_module(name):
    """configs/<name>.py as a module (its `import _paper` needs configs/ on the path)."""
    path = ROOT / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_doc_check_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "configs"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "configs"))
    return module


ROWS = [(path, row) for row in _table_rows()[1] for path in _specs(row["config"])]


def test_table_has_the_columns_the_check_reads():
    header, rows = _table_rows()
    assert set(COLUMNS) <= set(header) and rows


@pytest.mark.parametrize("path,row", ROWS, ids=[path.split("/", 1)[1] for path, _ in ROWS])
def test_table_row_matches_what_the_config_loads(path, row):
    expected, loaded = _expected(row), _loaded(path)
    assert loaded.pop("step") == ("step", 0.1), path
    for key, value in expected.items():
        assert loaded[key] == pytest.approx(value, rel=1e-9), (path, key, loaded[key], value)


def test_every_paper_config_is_in_the_table_once():
    """Each config built on configs/_paper.py, and each dataset/method/architecture of
    wsolevaluation.py, has exactly one row."""
    listed = [path for path, _ in ROWS]
    assert len(listed) == len(set(listed)), "a config is listed twice"
    paper = sorted(f"configs/{p.name}" for p in (ROOT / "configs").glob("*.py")
                   if "_paper.paper_config(" in p.read_text() and p.name != "wsolevaluation.py")
    assert sorted(p for p in listed if "wsolevaluation" not in p) == paper
    module = _config_module("wsolevaluation")
    combos = sorted(f"configs/wsolevaluation.py:{d},{m},{a}"
                    for d in ("cub", "ilsvrc", "openimages")
                    for m in module.METHODS for a in module.ARCHITECTURES)
    assert sorted(p for p in listed if "wsolevaluation" in p) == combos
