"""Time and peak memory of the README's main command (generate data, train, evaluate).

    python benchmarks/bench_default_run.py [--config configs/synthetic_cam.py] [--config.key=value ...]

Runs `train.py` in a fresh subprocess with a fresh workdir and data folder (so dataset generation
and compilation are included), and reports wall time, the peak resident memory of the largest
process it started (ru_maxrss of children: train.py itself or a dataset-generation worker) and the
final metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/synthetic_cam.py")
    p.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    args, overrides = p.parse_known_args()
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)}")
    tmp = Path(tempfile.mkdtemp(prefix="wsolax_bench_"))
    cmd = [sys.executable, "train.py", "--config", args.config,
           f"--config.workdir={tmp / 'run'}", f"--config.data.root={tmp / 'data'}",
           "--config.train.progress_bar=False", *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(proc.stdout[-3000:])
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        sys.exit(proc.returncode)
    metrics = json.loads((tmp / "run" / "eval" / "metrics.json").read_text())
    train_log = [json.loads(l) for l in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    report = {
        "command": " ".join(cmd[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
        "train_images_per_second_last_window": round(train_log[-1]["images_per_second"], 1),
        "final_train_loss": train_log[-1]["loss"],
        "metrics": metrics["splits"],
        "tau": metrics["tau"],
    }
    print(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
