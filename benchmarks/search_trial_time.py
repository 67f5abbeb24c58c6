"""How long one search trial takes per method on the embedded benchmark (issue 35, point 5):
each method's `configs/synthetic_<m>.py:finegrained` run once through `python -m wsolax.search`
with a one-point space (the protocol's own learning rate), so the time is a trial's as the search
spends it: training plus scoring on val, in the search's process.

    python benchmarks/search_trial_time.py [--out runs/search_trial_time] [--methods cam adl ...]

Writes <out>/trial_seconds.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("cam", "adl", "dgdm", "dfm", "wtl", "has", "acol", "spg", "cutmix")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/search_trial_time")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    args = p.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    space = out / "one_point.py"
    space.write_text("def get_space():\n    return {'optim.lr': ('choice', (0.01,))}\n")
    # The data first, so that no trial's time includes generating it.
    subprocess.run([sys.executable, "-c", "from wsolax import datasets; "
                    "from wsolax.config import load_config; "
                    "c = load_config('configs/synthetic_cam.py:finegrained', "
                    f"['--config.data.root={out / 'data'}']); "
                    "[datasets.load_split(c.data, s) for s in ('train', 'val')]"],
                   cwd=ROOT, check=True)
    seconds = {}
    for method in args.methods:
        study = out / method
        cmd = [sys.executable, "-m", "wsolax.search",
               "--config", f"configs/synthetic_{method}.py:finegrained", "--space", str(space),
               "--trials", "1", "--storage", str(out / f"{method}.db"), "--out", str(study),
               f"--config.data.root={out / 'data'}"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{method}: {proc.stderr[-2000:]}")
        trial = json.loads((study / "trials.json").read_text())["trials"][0]
        seconds[method] = {"seconds": trial["seconds"], "state": trial["state"]}
        print(method, seconds[method], flush=True)
    (out / "trial_seconds.json").write_text(json.dumps(seconds, indent=2))
    print("| method | one trial (s) | state |\n|---|---|---|")
    for method, r in seconds.items():
        print(f"| {method} | {r['seconds']:.0f} | {r['state']} |")


if __name__ == "__main__":
    main()
