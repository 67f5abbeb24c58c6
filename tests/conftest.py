import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # Configs name repo-relative paths (configs/..., data/...), as on the command line.
    monkeypatch.chdir(ROOT)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
