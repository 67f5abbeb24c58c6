"""Issue 34's check that the new readings run: Where to Look and DFM (and CAM beside them) on the
embedded benchmark, one seed, scored on the **val split only** (the test split is neither
evaluated nor read: the fair comparison is the fair trial's, with its own pre-registration).

    python benchmarks/readings_diagnostic.py [--out runs/readings_diagnostic] [--seed 7]

Runs (each `train.py --config configs/synthetic_<m>.py:finegrained...`, skipped when finished):
  wtl           Where to Look, readings v2, the protocol's rates (new layers x10)
  wtl_mult1     the same with every layer at the backbone's rate (new_layer_lr_mult=1)
  wtl_clip5     the same as wtl with the gradient norm clipped at 5 (v1's guard, on v2 readings)
  wtl_v1        Where to Look under readings=v1 (summed loss, row softmax, ReLU, clip 5)
  dfm, dfm_v1   DFM under readings v2 (F + F at evaluation) and v1 (the identity)
  cam           CAM under readings v2
Reported per run: whether training stayed finite (the first step whose loss is not), val Top-1,
MaxBoxAccV2 and PxAP (τ chosen on val), and from benchmarks/synthetic_cam_coverage.py on val:
the CAM peak on the part and `scoremap_distance_to_mean` (0: every image gets the same map).
Writes <out>/diagnostic.json and prints a markdown table. Then, for DFM's two runs, the val
Top-1 of each trained checkpoint under both test readings (F + F and the identity: reading D2),
the same weights, so what the test reading changes is seen apart from training.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from compare_methods import run  # noqa: E402 (a sibling script: a subprocess, its stdout)

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # name -> (config, extra overrides)
    "cam": ("configs/synthetic_cam.py:finegrained", []),
    "wtl": ("configs/synthetic_wtl.py:finegrained", []),
    "wtl_mult1": ("configs/synthetic_wtl.py:finegrained", ["--config.optim.new_layer_lr_mult=1.0"]),
    "wtl_clip5": ("configs/synthetic_wtl.py:finegrained", ["--config.optim.clip_grad_norm=5.0"]),
    "wtl_v1": ("configs/synthetic_wtl.py:finegrained,readings=v1", []),
    "dfm": ("configs/synthetic_dfm.py:finegrained", []),
    "dfm_v1": ("configs/synthetic_dfm.py:finegrained,readings=v1", []),
}
VAL_ONLY = ['--config.eval.splits=("val",)', "--config.eval.threshold_split=val"]
# Train on through a divergence and evaluate what it left (what the earlier benchmark's runs did),
# logging every step so the first non-finite step is exact; neither changes what is trained.
TRAIN_ON = ["--config.train.stop_on_nonfinite=False", "--config.train.log_every_steps=1"]


def dfm_eval_readings(out: Path, name: str, config: str, data: Path) -> dict:
    """Val Top-1 of the run's checkpoint with DFM's test output F + F and the identity."""
    import jax  # noqa: PLC0415 (only this part needs JAX in this process)
    import numpy as np  # noqa: PLC0415

    from wsolax import datasets, sharding  # noqa: PLC0415
    from wsolax.checkpoint import restore_model  # noqa: PLC0415
    from wsolax.config import load_config  # noqa: PLC0415
    from wsolax.data import pipeline  # noqa: PLC0415
    from wsolax.registry import build_model  # noqa: PLC0415

    base = [f"--config.data.root={data}"]
    cfg = load_config(config, base)
    mesh = sharding.data_mesh()
    _, variables, _ = restore_model(cfg, out / name, mesh)  # checked against the writer's config
    meta = datasets.load_split(cfg.data, "val")
    result = {}
    for reading in ("residual", "identity"):
        model = build_model(load_config(config, base + [
            f"--config.model.methods.dfm.eval_output={reading}"]))
        logits_of = jax.jit(lambda v, x, m=model: m.apply(v, x, train=False)["logits"])
        correct = total = 0
        for batch in pipeline.iterate(pipeline.eval_batches(
                meta, batch_size=cfg.eval.batch_size, crop_size=(cfg.data.crop_size,) * 2,
                mean=cfg.data.mean, std=cfg.data.std, resize=cfg.data.resize), num_threads=1):
            b = sharding.put_batch({"image": batch["image"]}, mesh)
            pred = np.asarray(jax.device_get(logits_of(variables, b["image"]))).argmax(-1)
            valid = np.asarray(batch["valid"], bool)
            correct += int((pred[valid] == np.asarray(batch["label"])[valid]).sum())
            total += int(valid.sum())
        result[reading] = round(100.0 * correct / total, 1)
    return result


def first_nonfinite_step(metrics_file: Path) -> int | None:
    for line in metrics_file.read_text().splitlines():
        row = json.loads(line.replace("NaN", "null").replace("Infinity", "null"))
        loss = row.get("loss")
        if row.get("split") == "train" and (loss is None or not math.isfinite(loss)):
            return int(row["step"])
    return None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/readings_diagnostic")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--runs", nargs="*", default=list(RUNS))
    args = p.parse_args()
    out = ROOT / args.out
    data = out / "data"
    rows = {}
    for name in args.runs:
        config, extra = RUNS[name]
        workdir = out / name
        common = [f"--config.data.root={data}", *extra]
        if not (workdir / "eval" / "metrics.json").exists():
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
            run([sys.executable, "train.py", "--config", config, f"--config.seed={args.seed}",
                 f"--config.workdir={workdir}", "--config.train.progress_bar=False", *VAL_ONLY,
                 *TRAIN_ON, *common])
        val = json.loads((workdir / "eval" / "metrics.json").read_text())["splits"]["val"]
        coverage = json.loads(run([sys.executable, "benchmarks/synthetic_cam_coverage.py",
                                   "--config", config, "--workdir", str(workdir), "--split", "val",
                                   *common]))
        rows[name] = {"config": config, "overrides": extra,
                      "first_nonfinite_step": first_nonfinite_step(workdir / "metrics.jsonl"),
                      "top1_cls": val["top1_cls"], "max_box_acc_v2": val["max_box_acc_v2"],
                      "pxap": val["pxap"], **coverage}
        print(name, json.dumps(rows[name]), flush=True)
    (out / "diagnostic.json").write_text(json.dumps(rows, indent=2))
    print("| run | loss finite | val Top-1 | val MaxBoxAccV2 | val PxAP | CAM peak on part | "
          "map distance to the mean map |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        finite = "yes" if r["first_nonfinite_step"] is None else \
            f"no (step {r['first_nonfinite_step']})"
        print(f"| {name} | {finite} | {r['top1_cls']:.1f} | {r['max_box_acc_v2']:.1f} | "
              f"{r['pxap']:.1f} | {r['cam_peak_on_part_%']:.1f} | "
              f"{r['scoremap_distance_to_mean']:.3f} |")
    swaps = {name: dfm_eval_readings(out, name, RUNS[name][0], data)
             for name in ("dfm", "dfm_v1") if name in rows}
    if swaps:
        (out / "dfm_eval_readings.json").write_text(json.dumps(swaps, indent=2))
        print("\n| DFM run (trained with) | val Top-1, tested F + F | val Top-1, tested F |")
        print("|---|---|---|")
        for name, r in swaps.items():
            print(f"| {name} | {r['residual']:.1f} | {r['identity']:.1f} |")


if __name__ == "__main__":
    main()
