import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # Configs name repo-relative paths (configs/..., data/...), as on the command line.
    monkeypatch.chdir(ROOT)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Many tests (their subprocesses and both xdist workers too) compile the same XLA programs, e.g.
# the tiny model's train step: JAX's persistent compilation cache compiles each once. Its key holds
# the program, the XLA flags (an AVX2 cap, a forced device count) and the versions, so a hit is the
# same executable. Measured: the trainings' test files 165 s -> 113 s from an empty cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
