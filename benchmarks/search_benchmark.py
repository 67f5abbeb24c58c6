"""The embedded benchmark's fair trial (docs/benchmark_preregistration_v2.md): every method's
equal-budget search on val, then its chosen setting trained with three new seeds and scored on
test once.

    python benchmarks/search_benchmark.py search [--methods cam adl ...] [--out runs/search_v2]
    python benchmarks/search_benchmark.py final  [--methods cam adl ...] [--out runs/search_v2]

`search` runs, one method after the other, `python -m wsolax.search` with the method's
`configs/search/<method>.py`, --trials 10, --seed 35, on a new draw of the fine-grained set
(data seed 35), each study in <out>/<method>.db; run it again to resume (finished trials are kept).
Each study's trials.json / trials.md are copied to docs/benchmark_v2/search/<method>/.

`final` reads each method's chosen setting from its trials.json and trains it with seeds
100, 101, 102 on the same data (benchmarks/compare_methods.py's runs, into <out>/final), then
writes docs/benchmark_v2/results.json and table.md: mean +- sample std over the seeds on test
(CAM threshold chosen on val) and each method's verdict against CAM by the pre-registered rule.
A method with no completed trial has no setting and no final runs; the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from compare_methods import COLUMNS, DIAGNOSTICS, NAMES, ROOT, run_one, table

METHODS = ("cam", "adl", "dgdm", "dfm", "wtl", "has", "acol", "spg", "cutmix")
TRIALS = 10
SEARCH_SEED = 35
DATA_SEED = 35
FINAL_SEEDS = (100, 101, 102)
PRIMARY = "max_box_acc_v2"
RECORDS = ROOT / "docs" / "benchmark_v2"


def data_overrides(out: Path) -> list[str]:
    return [f"--config.data.root={out / 'data'}", f"--config.data.synthetic.seed={DATA_SEED}"]


def search(methods, out: Path) -> None:
    for method in methods:
        cmd = [sys.executable, "-m", "wsolax.search",
               "--config", f"configs/synthetic_{method}.py:finegrained",
               "--space", f"configs/search/{method}.py", "--trials", str(TRIALS),
               "--storage", str(out / f"{method}.db"), "--out", str(out / method),
               "--seed", str(SEARCH_SEED), *data_overrides(out)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        keep = RECORDS / "search" / method
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("trials.json", "trials.md"):
            shutil.copy(out / method / name, keep / name)


def chosen_overrides(record: dict) -> list[str] | None:
    chosen = record["chosen"]
    if chosen is None:
        return None
    return [f"--config.{key}={value}" for key, value in sorted(chosen["params"].items())]


def verdict(method_values: np.ndarray, cam_values: np.ndarray) -> str:
    """The rule of both pre-registrations: better (worse) than CAM if the mean difference
    exceeds twice its standard error, 2 * sqrt(s_m^2 / n_m + s_cam^2 / n_cam)."""
    diff = method_values.mean() - cam_values.mean()
    se = np.sqrt(method_values.var(ddof=1) / len(method_values)
                 + cam_values.var(ddof=1) / len(cam_values))
    if diff > 2 * se:
        return f"improves on CAM (+{diff:.1f} > 2·SE {2 * se:.1f})"
    if diff < -2 * se:
        return f"falls behind CAM ({diff:.1f} < −2·SE {2 * se:.1f})"
    return f"within noise of CAM ({diff:+.1f}, 2·SE {2 * se:.1f})"


def final(methods, out: Path) -> None:
    results, settings, missing = {}, {}, []
    for method in methods:
        record = json.loads((RECORDS / "search" / method / "trials.json").read_text())
        overrides = chosen_overrides(record)
        if overrides is None:
            missing.append(method)
            continue
        settings[method] = record["chosen"]
        results[method] = []
        for seed in FINAL_SEEDS:
            r = run_one(method, seed, out / "final", out / "data",
                        data_overrides(out) + overrides, "finegrained")
            print(f"{method} seed {seed}: {PRIMARY} {r[PRIMARY]:.1f}", flush=True)
            results[method].append(r)
    md = table(results) + "\n\nDiagnostics (%):\n\n" + table(results, DIAGNOSTICS)
    if "cam" in results:
        cam = np.array([r[PRIMARY] for r in results["cam"]], np.float64)
        lines = [f"- {NAMES[m]}: " + verdict(np.array([r[PRIMARY] for r in runs], np.float64), cam)
                 for m, runs in results.items() if m != "cam"]
        md += "\n\nMaxBoxAccV2 against CAM (the pre-registered 2·SE rule):\n\n" + "\n".join(lines)
    if missing:
        md += "\n\nNo completed trial, so no setting and no final runs: " + ", ".join(
            NAMES[m] for m in missing)
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, "
               f"Python {platform.python_version()}")
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / "table.md").write_text(md + "\n")
    (RECORDS / "results.json").write_text(json.dumps(
        {"machine": machine, "seeds": FINAL_SEEDS, "data_seed": DATA_SEED, "settings": settings,
         "no_setting": missing, "columns": [k for k, _ in COLUMNS], "runs": results}, indent=2))
    print(md)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=("search", "final"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--out", default="runs/search_v2")
    args = p.parse_args()
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (search if args.stage == "search" else final)(args.methods, out)


if __name__ == "__main__":
    main()
