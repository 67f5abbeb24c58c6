"""Train and evaluate several WSOL methods x seeds on the embedded dataset; one comparison table.

    python benchmarks/compare_methods.py [--methods cam adl dgdm dfm] [--seeds 0 1 2]
        [--out runs/compare] [--variant finegrained[,scratch]] [--finetune-from runs/compare]
        [--config.key=value ...]

Each (method, seed) runs `train.py --config configs/synthetic_<method>.py --config.seed=<seed>` in a
subprocess into <out>/<method>/seed<seed> (finished runs are reused, so the script can be resumed),
all on one shared copy of the generated dataset. Writes <out>/results.json, <out>/table.md (mean
+- sample std over seeds of the full protocol on the test split, CAM threshold chosen on val) and
<out>/overlays.png: the same test images, one column per method (seed 0).

--variant V: the configs' variant, e.g. `finegrained` (the embedded benchmark: the fine-grained set,
fine-tuned from the backbone pretrained on whole objects; configs/_benchmark.py) or
`finegrained,scratch` (the same set, no pretraining).

--finetune-from DIR: instead of from scratch, every method of seed s starts from the backbone of
DIR/cam/seed<s> (exported with `python -m wsolax.export --only backbone`) with new heads, using the
configs' `finetune` variant (the papers' protocol of fine-tuning a pretrained network), on DIR's
dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (("top1_cls", "Top-1 Cls"), ("gt_known_loc@val_tau", "GT-known Loc"),
           ("top1_loc@val_tau", "Top-1 Loc"), ("max_box_acc", "MaxBoxAcc"),
           ("max_box_acc_v2", "MaxBoxAccV2"), ("pxap", "PxAP"))
# Diagnostics from benchmarks/synthetic_cam_coverage.py (CAM of the GT class at half its max).
DIAGNOSTICS = (("cam_peak_on_part_%", "CAM peak on part"),
               ("object_pixels_covered_%", "object covered @ 0.5 max"),
               ("mask_precision@val_tau", "pixels on object @ τ"),
               ("top1_part_painted_out_%", "Top-1, part painted out"))
NAMES = {"cam": "CAM", "adl": "ADL", "dgdm": "DGDM", "dfm": "DFM", "wtl": "Where to Look",
         "has": "HaS", "acol": "ACoL", "spg": "SPG", "cutmix": "CutMix"}


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def export_backbone(pretrained: Path, seed: int, out: Path, data_root: Path) -> Path:
    """The backbone of the CAM run `pretrained`/cam/seed<seed>, as a file for model.init_from."""
    path = out / "init" / f"cam_seed{seed}_backbone.safetensors"
    if not path.exists():
        run([sys.executable, "-m", "wsolax.export", "--config", "configs/synthetic_cam.py",
             "--workdir", str(pretrained / "cam" / f"seed{seed}"), "--only", "backbone",
             "--out", str(path), f"--config.data.root={data_root}"])
    return path


def run_one(method: str, seed: int, out: Path, data_root: Path, overrides: list[str],
            variant: str = "") -> dict:
    workdir = out / method / f"seed{seed}"
    metrics_file = workdir / "eval" / "metrics.json"
    config = f"configs/synthetic_{method}.py" + (f":{variant}" if variant else "")
    if not metrics_file.exists():
        cmd = [sys.executable, "train.py", "--config", config,
               f"--config.seed={seed}", f"--config.workdir={workdir}",
               f"--config.data.root={data_root}", "--config.train.progress_bar=False", *overrides]
        if workdir.exists():  # an interrupted run: start it again from scratch
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
        start = time.perf_counter()
        run(cmd)
        (workdir / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    coverage_file = workdir / "coverage.json"
    if not coverage_file.exists():
        text = run([sys.executable, "benchmarks/synthetic_cam_coverage.py", "--config", config,
                    "--workdir", str(workdir), f"--config.data.root={data_root}", *overrides])
        coverage_file.write_text(text[text.rindex("\n{") + 1:] if "\n{" in text else text)
    summary = json.loads(metrics_file.read_text())
    result = dict(summary["splits"]["test"])
    result.update(json.loads(coverage_file.read_text()))
    result["tau"] = summary["tau"]
    wall = workdir / "wall_seconds.txt"
    result["wall_seconds"] = float(wall.read_text()) if wall.exists() else None
    return result


def table(results: dict[str, list[dict]], columns=COLUMNS) -> str:
    head = "| method | " + " | ".join(title for _, title in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for method, runs in results.items():
        cells = []
        for key, _ in columns:
            values = np.array([r[key] for r in runs], np.float64)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.1f} ± {std:.1f}")
        lines.append(f"| {NAMES.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overlay_grid(out: Path, methods: list[str], seed: int, rows: int) -> Path | None:
    """Rows: test images; columns: the input with its box, then each method's CAM overlay."""
    columns = []
    for method in methods:
        folder = out / method / f"seed{seed}" / "eval" / "overlays_test"
        files = sorted(folder.glob("*.png"))[:rows]
        if len(files) < rows:
            return None
        pictures = [cv2.imread(str(f)) for f in files]
        half = pictures[0].shape[1] // 2  # each overlay is [image | CAM blend]
        if not columns:
            columns.append(np.concatenate([p[:, :half] for p in pictures], axis=0))
        columns.append(np.concatenate([p[:, half:] for p in pictures], axis=0))
    labels = ["image"] + [NAMES.get(m, m) for m in methods]
    header = np.full((28, sum(c.shape[1] for c in columns), 3), 255, np.uint8)
    x = 0
    for label, col in zip(labels, columns):
        cv2.putText(header, label, (x + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
        x += col.shape[1]
    grid = np.concatenate([header, np.concatenate(columns, axis=1)], axis=0)
    path = out / "overlays.png"
    cv2.imwrite(str(path), grid)
    return path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=["cam", "adl", "dgdm", "dfm"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--data-root", default=None, help="shared dataset folder (default <out>/data)")
    p.add_argument("--overlay-rows", type=int, default=6)
    p.add_argument("--variant", default="", help="config variant of every run (e.g. finegrained)")
    p.add_argument("--finetune-from", default=None,
                   help="a from-scratch comparison folder whose cam/seed<s> backbones to start from")
    args, overrides = p.parse_known_args()
    if args.variant and args.finetune_from:
        p.error("--variant and --finetune-from exclude each other")
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)}")
    out = (ROOT / args.out).resolve()
    pretrained = (ROOT / args.finetune_from).resolve() if args.finetune_from else None
    default_data = (pretrained or out) / "data"
    data_root = Path(args.data_root).resolve() if args.data_root else default_data
    results = {}
    for method in args.methods:
        results[method] = []
        for seed in args.seeds:
            extra, variant = [], args.variant
            if pretrained:
                variant = "finetune"
                init = export_backbone(pretrained, seed, out, data_root)
                extra = [f"--config.model.init_from={init}"]
            r = run_one(method, seed, out, data_root, overrides + extra, variant)
            print(f"{method} seed {seed}: " + ", ".join(f"{t} {r[k]:.1f}" for k, t in COLUMNS),
                  flush=True)
            results[method].append(r)
    md = table(results) + "\n\nDiagnostics (%):\n\n" + table(results, DIAGNOSTICS)
    grid = overlay_grid(out, args.methods, args.seeds[0], args.overlay_rows)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    (out / "table.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "seeds": args.seeds, "overrides": overrides, "variant": args.variant,
         "finetune_from": args.finetune_from, "runs": results},
        indent=2))
    print(md)
    print(f"\nresults: {out / 'results.json'}\noverlays: {grid}")


if __name__ == "__main__":
    main()
