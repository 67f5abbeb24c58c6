import json
import os
import pathlib

import pytest
from filelock import FileLock

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # Configs name repo-relative paths (configs/..., data/...), as on the command line.
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def once(tmp_path_factory, worker_id):
    """`once(name, compute)`: compute()'s JSON result, computed once per test session for all the
    xdist workers (the first to ask computes it holding a file lock; the others read the file).
    For the worker processes that several tests read (the sharding worker, say): xdist hands
    out tests one by one, so tests of one file can run on both workers at once, and its loadgroup
    does not group under pytest 9.2 (xdist 3.8 renames `item._nodeid`, which pytest no longer
    reads)."""
    shared = None if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    results = {}

    def get(name: str, compute):
        if name not in results:
            if shared is None:
                results[name] = compute()
            else:
                path = shared / f"once_{name}.json"
                with FileLock(f"{path}.lock"):
                    if not path.exists():
                        path.write_text(json.dumps(compute()))
                results[name] = json.loads(path.read_text())
        return results[name]
    return get


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Many tests (their subprocesses and both xdist workers too) compile the same XLA programs, e.g.
# the tiny model's train step: JAX's persistent compilation cache compiles each once. Its key holds
# the program, the XLA flags (an AVX2 cap, a forced device count) and the versions, so a hit is the
# same executable. Measured: the trainings' test files 165 s -> 113 s from an empty cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
