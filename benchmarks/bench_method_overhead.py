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
the last map (the paper's "Mixed" patch sizes scaled to --image-size): 2x CAM for the backbone,
plus the head. The benchmark's baselines (`has cutmix acol spg`) are built as
configs/wsolevaluation.py builds them (wsolax.methods.placements, placement `wsolevaluation`):
HaS and CutMix transform the batch inside the step, ACoL and SPG add their heads. `--breakdown` adds XLA's flop count of each part of the WTL step (the backbone on
both views, the head, and CAAM, SSAM and the aggregation + classifiers alone, each forward +
backward) next to the dense matrix-product count of the paper's equations (`wtl_dense_flops`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsolax.config import base_config, load_config
from wsolax.methods.placements import paper_inserts, source_hparams
from wsolax.methods.where_to_look import caam, scaled_patch_sizes, ssam
from wsolax.methods.where_to_look.method import loss as wtl_loss
from wsolax.registry import build_model, selected_methods
from wsolax.training.objectives import build_objective
from wsolax.training.optim import make_optimizer
from wsolax.models.wsol_model import init_key
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step


# The CVPR'20 benchmark's baselines: placed and parametrised as its code does (HaS 4 px cells at
# 224 px, CutMix beta 1; ACoL's head, SPG's taps and head at the benchmark's widths).
BENCHMARK_BASELINES = ("has", "cutmix", "acol", "spg")


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
    elif method in BENCHMARK_BASELINES:  # as configs/wsolevaluation.py builds them
        cfg.model.inserts = paper_inserts(method, args.backbone, "wsolevaluation")
        cfg.model.methods[method] = source_hparams(method, args.backbone, "wsolevaluation")
    elif method != "cam":
        cfg.model.inserts = (tuple((s, method) for s in args.stages) if args.stages
                             else paper_inserts(method, args.backbone))
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 100, 1000)
    shape = (1, args.image_size, args.image_size, 3)
    state = jax.jit(lambda k: init_state(model, tx, k, shape))(init_key(0))
    return cfg, state, jax.jit(make_train_step(model, tx, build_objective(cfg)), donate_argnums=0)


def _loadavg() -> str | None:
    """The 1/5/15-minute load averages (Linux), to say how shared the machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def cost(compiled) -> dict:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per program
        analysis = analysis[0]
    return {k: float(analysis.get(k, float("nan"))) for k in ("flops", "bytes accessed")}


def wtl_dense_flops(b: int, h: int, w: int, c: int, agg_features: int, agg_kernel: int,
                    num_classes: int) -> dict:
    """Flops of the WTL head's matrix products for b pairs of (h, w, c) maps, forward + backward:
    2 flops a multiply-add, and each product Z = AB whose operands both need gradients costs 3x
    its forward (Z, dA = dZ B^T, dB = A^T dZ). Elementwise work (softmaxes, sums) is left out.
    CAAM (Eqs. 1-6): the C x C energy and the two products with the softmaxed energies, N C^2
    each. SSAM (Eq. 7), per view: the 1x1 projections to C/8, C/8 and C, then the N x N
    attention logits (N^2 C/8) and R (N^2 C). Aggregation: conv to `agg_features` (k x k window),
    then the classifier and the CAM of one class per view (small)."""
    n, cr = h * w, max(1, c // 8)
    d = agg_features or c
    mac = {"caam": b * 3 * n * c * c,
           "ssam": 2 * b * (n * c * (2 * cr + c) + n * n * (cr + c)),
           "aggregation": 2 * b * (n * c * d * agg_kernel ** 2 + d * num_classes + n * d)}
    flops = {k: 3 * 2 * v for k, v in mac.items()}
    flops["head"] = sum(flops.values())
    return flops


def wtl_breakdown(cfg, state, args) -> dict:
    """XLA's flop count of the WTL step's parts, each compiled alone (forward + backward)."""
    model = build_model(cfg)
    b, s = args.batch, args.image_size
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.normal(size=(2 * b, s, s, 3)).astype(np.float32))
    bvars = {"params": state.params["backbone"]}
    if state.batch_stats.get("backbone"):
        bvars["batch_stats"] = state.batch_stats["backbone"]
    feats = jax.eval_shape(lambda v, x: model.backbone.apply(v, x, train=False), bvars, images)
    ct = jnp.asarray(rng.normal(size=feats.shape).astype(np.float32))

    def backbone_loss(params):
        out, _ = model.backbone.apply({**bvars, "params": params}, images, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
        return jnp.sum(out * ct)

    f_x = jnp.asarray(np.maximum(rng.normal(size=(b, *feats.shape[1:])), 0).astype(np.float32))
    f_xt = jnp.asarray(np.maximum(rng.normal(size=(b, *feats.shape[1:])), 0).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, args.num_classes, b).astype(np.int32))
    (selected,) = selected_methods(cfg.model)
    hp = selected.hparams
    terms = wtl_loss(hp, 0)
    head_params = state.params["head"]

    def head_loss(params, a, t):
        out = model.head.apply({"params": params}, a, t, labels[:, None], method="pair")
        ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
        (ce_t, fuse), _ = terms(out, {"label": labels}, 0)
        return ce + ce_t + fuse

    ct_half = ct[:b]

    def caam_loss(deltas, a, t):
        y_x, y_xt = caam(a, t, deltas[0], deltas[1])
        return jnp.sum(y_x * ct_half) + jnp.sum(y_xt * ct_half[::-1])

    def ssam_loss(params, a, t):
        total = 0.0
        for name, f in (("ssam_x", a), ("ssam_x_tilde", t)):
            q = params[name]
            out = ssam(f, (q["query_kernel"], q["query_bias"]), (q["key_kernel"], q["key_bias"]),
                       (q["value_kernel"], q["value_bias"]), q["alpha"])
            total = total + jnp.sum(out * ct_half)
        return total

    def aggregation_loss(params, a, t):
        # delta = alpha = 0 would make the attention terms vanish; the head's aggregation and
        # classifiers see F^c + F^s, here a map of the same shape
        out = model.head.apply({"params": params}, a, t, labels[:, None],
                               method=lambda m, a, t, c: (m._classify("x", a, c),
                                                          m._classify("x_tilde", t, c)))
        return sum(jnp.sum(o) for o in jax.tree.leaves(out))

    def flops_of(fn, argnums, *xs):
        compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*xs).compile()
        return cost(compiled)["flops"]

    got = {"backbone_both_views": flops_of(backbone_loss, 0, state.params["backbone"]),
           "head": flops_of(head_loss, (0, 1, 2), head_params, f_x, f_xt),
           "caam": flops_of(caam_loss, (0, 1, 2), jnp.array([0.1, 0.2]), f_x, f_xt),
           "ssam": flops_of(ssam_loss, (0, 1, 2), head_params, f_x, f_xt),
           "aggregation": flops_of(aggregation_loss, (0, 1, 2), head_params, f_x, f_xt)}
    _, h, w, c = feats.shape
    dense = wtl_dense_flops(b, h, w, c, hp.agg_features, hp.agg_kernel, args.num_classes)
    return {"feature_map": list(feats.shape[1:]), "agg_features": hp.agg_features or c,
            "agg_kernel": hp.agg_kernel, "xla_flops": got, "dense_product_flops": dense}


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
    p.add_argument("--breakdown", action="store_true",
                   help="add XLA's flop count of the parts of the WTL step (wtl_breakdown)")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    batch = {"image": rng.normal(size=(args.batch, args.image_size, args.image_size, 3)
                                 ).astype(np.float32),
             "label": rng.integers(0, args.num_classes, args.batch).astype(np.int32)}
    batch = jax.device_put(batch)
    load_start = _loadavg()
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
        if method == "wtl":
            wtl = cfg.model.methods.where_to_look
            runs[method]["settings"] = {"agg_kernel": wtl.agg_kernel,
                                        "agg_features": wtl.agg_features,
                                        "patch_sizes": list(wtl.patch_sizes)}
            if args.breakdown:
                runs[method]["breakdown"] = wtl_breakdown(cfg, state, args)
                print(f"wtl breakdown: {json.dumps(runs[method]['breakdown'])}", flush=True)
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
              "dtype": args.dtype, "load_average_start": load_start,
              "load_average_end": _loadavg(), "methods": {}}
    base_cost = runs["cam"]["cost"] if "cam" in runs else None
    for method, r in runs.items():
        med = float(np.median(r["times"]))
        extra = ({k: 100 * (r["cost"][k] / base_cost[k] - 1) for k in r["cost"]}
                 if base_cost else {})
        report["methods"][method] = {
            "median_step_s": med, "min_step_s": float(np.min(r["times"])),
            "images_per_s": args.batch / med, "inserts": r["inserts"],
            "overhead_vs_cam_percent": None if base is None else 100 * (med / base - 1),
            "xla_cost": r["cost"], "xla_cost_vs_cam_percent": extra,
            **{k: r[k] for k in ("settings", "breakdown") if k in r}}
        ov = report["methods"][method]["overhead_vs_cam_percent"]
        print(f"{method:6s} median {med * 1000:8.1f} ms/step  {args.batch / med:7.2f} img/s"
              + ("" if ov is None else f"  overhead {ov:+.1f} %")
              + "".join(f"  {k} {v:+.2f} %" for k, v in extra.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
