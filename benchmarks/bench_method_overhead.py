"""Train-step time of each WSOL method vs plain CAM on the same backbone and batch.

    python benchmarks/bench_method_overhead.py [--backbone resnet50] [--image-size 224] [--batch 8]
        [--methods cam adl dgdm dfm wtl] [--rounds 5] [--steps 3] [--json out.json]

Each method sits where its paper puts it (wsolax.methods.placements; `--stages` overrides, e.g.
for a backbone a paper does not use). Steps are jitted train steps (forward, backward, SGD update)
on random data; methods are timed round-robin, `--steps` steps each per round, so machine-load
drift affects all of them alike. Reports the median step time and its ratio to CAM, and XLA's
cost analysis of each compiled step (flops, bytes accessed): a load-independent measure of what
the inserted layers add. `wtl` (Where to Look) is a different kind of method: its step makes the
complementary pair and runs both views through the backbone, then CAAM/SSAM and two classifiers on
the last map (the paper's "Mixed" patch sizes scaled to --image-size); expect about 2x CAM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from wsolax.config import base_config, load_config
from wsolax.methods.placements import paper_inserts
from wsolax.methods.where_to_look import scaled_patch_sizes
from wsolax.registry import build_model
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.models.wsol_model import init_key
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step


def build(method: str, args):
    cfg = base_config()
    cfg.model.backbone = args.backbone
    cfg.model.dtype = args.dtype
    cfg.data.num_classes = args.num_classes
    if method == "wtl":  # the paper config's settings, patch sizes scaled to the image size
        paper = load_config(Path(__file__).resolve().parents[1] / "configs/cub_wtl_resnet50.py")
        cfg.model.methods.where_to_look = paper.model.methods.where_to_look
        wtl = cfg.model.methods.where_to_look
        wtl.patch_sizes = scaled_patch_sizes(args.image_size)
        if args.wtl_agg_kernel:
            wtl.agg_kernel = args.wtl_agg_kernel
    elif method != "cam":
        cfg.model.inserts = (tuple((s, method) for s in args.stages) if args.stages
                             else paper_inserts(method, args.backbone))
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 100, 1000)
    shape = (1, args.image_size, args.image_size, 3)
    state = jax.jit(lambda k: init_state(model, tx, k, shape))(init_key(0))
    return cfg, state, jax.jit(make_train_step(model, tx, build_objective(cfg)), donate_argnums=0)


def cost(compiled) -> dict:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per program
        analysis = analysis[0]
    return {k: float(analysis.get(k, float("nan"))) for k in ("flops", "bytes accessed")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--num-classes", type=int, default=200)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--methods", nargs="+", default=["cam", "adl", "dgdm", "dfm"])
    p.add_argument("--wtl-agg-kernel", type=int, default=0,
                   help="Where to Look's aggregation conv kernel (0: configs/cub_wtl_resnet50.py's)")
    p.add_argument("--stages", nargs="*", default=None)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    batch = {"image": rng.normal(size=(args.batch, args.image_size, args.image_size, 3)
                                 ).astype(np.float32),
             "label": rng.integers(0, args.num_classes, args.batch).astype(np.int32)}
    batch = jax.device_put(batch)
    run_key = jax.random.key(0)
    runs = {}
    for method in args.methods:
        cfg, state, jitted = build(method, args)
        t0 = time.perf_counter()
        step = jitted.lower(state, batch, run_key).compile()
        compile_s = time.perf_counter() - t0
        state, m = step(state, batch, run_key)
        jax.block_until_ready(m)
        state, m = step(state, batch, run_key)  # one more warm step
        jax.block_until_ready(m)
        runs[method] = {"state": state, "step": step, "times": [], "compile_s": compile_s,
                        "inserts": [list(x) for x in cfg.model.inserts], "cost": cost(step)}
        print(f"{method}: compiled in {compile_s:.1f} s; inserts {cfg.model.inserts}", flush=True)
    for _ in range(args.rounds):
        for method, r in runs.items():
            for _ in range(args.steps):
                t0 = time.perf_counter()
                r["state"], m = r["step"](r["state"], batch, run_key)
                jax.block_until_ready(m)
                r["times"].append(time.perf_counter() - t0)
    base = float(np.median(runs["cam"]["times"])) if "cam" in runs else None
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                         f"{jax.devices()[0].device_kind}, Python {platform.python_version()}",
              "backbone": args.backbone, "image_size": args.image_size, "batch": args.batch,
              "dtype": args.dtype, "methods": {}}
    base_cost = runs["cam"]["cost"] if "cam" in runs else None
    for method, r in runs.items():
        med = float(np.median(r["times"]))
        extra = ({k: 100 * (r["cost"][k] / base_cost[k] - 1) for k in r["cost"]}
                 if base_cost else {})
        report["methods"][method] = {
            "median_step_s": med, "min_step_s": float(np.min(r["times"])),
            "images_per_s": args.batch / med, "inserts": r["inserts"],
            "overhead_vs_cam_percent": None if base is None else 100 * (med / base - 1),
            "xla_cost": r["cost"], "xla_cost_vs_cam_percent": extra}
        ov = report["methods"][method]["overhead_vs_cam_percent"]
        print(f"{method:6s} median {med * 1000:8.1f} ms/step  {args.batch / med:7.2f} img/s"
              + ("" if ov is None else f"  overhead {ov:+.1f} %")
              + "".join(f"  {k} {v:+.2f} %" for k, v in extra.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
