"""One-command accelerator benchmark: wsolax vs PyTorch train steps, CAM evaluation, Where to Look.

    python benchmarks/accelerator_check.py --out accelerator_check.json [--budget-s 420]
        [--device auto|cpu|gpu] [--tiny] [--max-batch 256] [--compile-workers N]

On one GPU (or TPU for the wsolax-only parts), in one process and within a wall-time budget:

* train step, side by side: ResNet50 and VGG16-GAP, CAM and ADL, float32 and bfloat16, at batch
  32 and at the largest batch that fits up to `--max-batch` (tried at 256, halved on out-of-memory;
  PyTorch starts from the batch wsolax fitted, and wsolax is measured again if PyTorch fits less,
  so the ratio always compares equal batches). wsolax: the training loop's own program
  (`sharding.shard_step(make_train_step(...))`, state donated) built from the paper configs
  (configs/cub_adl_resnet50.py with plain ResNet50, configs/cub_adl_vgg16.py; CAM = the same
  config without inserts). PyTorch: eager, channels-last, `torch.autocast(bfloat16)` for the
  bfloat16 rows, cudnn.benchmark and TF32 on (what a user sets), `torch.optim.SGD` with the
  config's momentum / Nesterov / weight decay and the x10 rate on new layers; ResNet50 from
  benchmarks/bench_resnet50_speed.py, VGG16-GAP below, both in torch.nn.functional.
* the jitted CAM extractor + the exact evaluator on CUB-sized inputs (224x224, 200 classes, the
  eval batch of the paper configs, CUB-like random boxes from benchmarks/bench_evaluator.py):
  device extraction (incl. host->device batch and device->host CAMs), the host's exact score
  maps, `WSOLEvaluator.accumulate`, and the whole loop as `wsolax.localization.run` runs it.
* Where to Look's train step (configs/cub_wtl_resnet50.py), wsolax only (no PyTorch reference).

Reported per row: images/s, wsolax/PyTorch ratio, and model FLOP utilisation (MFU): XLA's flop
count of the step (cost analysis of the lowered, pre-optimisation program: the network's own
arithmetic, before XLA rewrites convolutions into library calls whose flops the GPU cost model may
not count) / median step time / the device's peak (PEAKS below; unknown device -> MFU null). The
same count is used for PyTorch's row (same network, same batch).

Protocol and budget. Phase 1 lowers every wsolax program in priority order and compiles them on
`--compile-workers` threads (XLA's compile releases the GIL; GPU autotuning runs here, so nothing
is timed during it), until `--compile-share` of the budget is used; programs not started by then
are cancelled (phase 2 compiles them itself if time is left). Phase 2 measures case by case in
priority order (the bfloat16 / float32 CAM rows at the largest batch first: the targets' rows); a
case is skipped, and recorded as such, when the budget left is smaller than its expected duration
(the longest case of its kind so far, +20 %, plus the longest compile if it still needs one).
Each timing: warm-up calls (not timed), then `--rounds` windows of back-to-back steps with one device sync at
the end of each window (a training loop's dispatch pattern); images/s from the median window.
The JSON (`--out`) is rewritten after every case, so partial results survive a killed run.

`--tiny`: 16x16 images, batch 2 (largest tried from 4), float32, VGG16-GAP (Where to Look on the
tiny test backbone), two one-step windows: a CPU smoke run of every code path
(tests/test_accelerator_check.py, with `--simulate-oom-above 2` for the halving path).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import gc
import json
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

T_START = time.monotonic()  # the budget counts from here (imports included)

ROOT = Path(__file__).resolve().parents[1]
# The GPU image runs this from a plain checkout (wsolax not installed): import it from the tree.
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402

# Sets XLA_PYTHON_CLIENT_MEM_FRACTION before JAX starts (JAX and PyTorch share the GPU).
import bench_resnet50_speed as rs  # noqa: E402

SCHEMA = "wsolax.accelerator_check/1"
CONFIGS = ROOT / "configs"

# Peak dense throughput in FLOP/s by device kind (substring of jax's device_kind, lower case,
# first match wins, so the specific names come before the general ones). Sources, vendor
# datasheets; the "with sparsity" tensor-core figures halved to dense:
#   H200 SXM (NVIDIA H200 Tensor Core GPU datasheet): BF16 1,979 sparse -> 989; TF32 989 sparse ->
#     494; FP32 67. H200 NVL: BF16 1,671 sparse -> 835; TF32 835 sparse -> 418; FP32 60.
#   H100 SXM (NVIDIA H100 Tensor Core GPU datasheet): as H200 SXM. H100 NVL: as H200 NVL.
#     H100 PCIe: BF16 1,513 sparse -> 756; TF32 756 sparse -> 378; FP32 51.
#   A100 (NVIDIA A100 datasheet, SXM and PCIe): BF16 312 dense; TF32 156 dense; FP32 19.5.
#   L4 (NVIDIA L4 datasheet): BF16 242 sparse -> 121; TF32 120 sparse -> 60; FP32 30.3.
#   Cloud TPU system architecture pages (per chip, bf16): v4 275, v5e 197, v5p 459, v6e 918;
#     no float32 matrix peak is published (float32 matmuls run as several bf16 passes): null.
# float32 rows: XLA (default precision) and PyTorch (TF32 allowed below) run float32 convolutions
# on TF32 tensor cores on Ampere and newer, so `mfu` for float32 uses the plain FP32 peak as the
# issue asked and can exceed 100 %; `mfu_tf32` is the same time against the TF32 peak.
PEAKS = (
    ("h200 nvl", {"bfloat16": 835e12, "tf32": 418e12, "float32": 60e12}),
    ("h200", {"bfloat16": 989e12, "tf32": 494e12, "float32": 67e12}),
    ("h100 nvl", {"bfloat16": 835e12, "tf32": 418e12, "float32": 60e12}),
    ("h100 pcie", {"bfloat16": 756e12, "tf32": 378e12, "float32": 51e12}),
    ("h100", {"bfloat16": 989e12, "tf32": 494e12, "float32": 67e12}),
    ("a100", {"bfloat16": 312e12, "tf32": 156e12, "float32": 19.5e12}),
    ("l4", {"bfloat16": 121e12, "tf32": 60e12, "float32": 30.3e12}),
    ("tpu v4", {"bfloat16": 275e12}),
    ("tpu v5 lite", {"bfloat16": 197e12}),
    ("tpu v5e", {"bfloat16": 197e12}),
    ("tpu v5", {"bfloat16": 459e12}),  # v5p reports "TPU v5"
    ("tpu v6 lite", {"bfloat16": 918e12}),
    ("tpu v6e", {"bfloat16": 918e12}),
)

# The issue's targets, checked on the train rows at the largest batch.
TARGETS = {"ratio_bfloat16": 1.2, "ratio_float32": 1.0, "mfu_bfloat16": 0.40}


def device_peaks(device_kind: str) -> dict | None:
    kind = device_kind.lower()
    for name, peaks in PEAKS:
        if name in kind:
            return {"matched": name, **peaks}
    return None


def elapsed() -> float:
    return time.monotonic() - T_START


def is_oom(exc: BaseException) -> bool:
    """XLA's RESOURCE_EXHAUSTED (compile or run) or torch.cuda.OutOfMemoryError."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def check_simulated_oom(batch: int, above: int) -> None:
    """`--simulate-oom-above N`: batches over N fail as out of memory, so that the CPU test walks
    the halving path that only a real accelerator's memory limit reaches otherwise."""
    if above and batch > above:
        raise MemoryError(f"RESOURCE_EXHAUSTED: simulated out of memory at batch {batch} "
                          f"(--simulate-oom-above {above})")


# ---------------------------------------------------------------------------------------------
# The cases, in priority order: the targets' rows first, so a short budget still answers them.
# ---------------------------------------------------------------------------------------------


def plan_cases(args) -> list[dict]:
    def train(model, method, dtype, batch):
        return {"kind": "train", "model": model, "method": method, "dtype": dtype,
                "batch_request": batch}

    def wtl(dtype, batch):
        return {"kind": "wtl", "model": args.wtl_backbone, "method": "wtl", "dtype": dtype,
                "batch_request": batch}

    def evaluation(model, dtype):
        return {"kind": "eval", "model": model, "method": "cam", "dtype": dtype,
                "batch_request": "eval"}

    if args.tiny:
        v = "vgg16_gap"
        # float32 only: PyTorch's bfloat16 autocast on a CPU without native bf16 is many times
        # slower than its float32 (docs/speed.md), too slow for a smoke test.
        cases = [train(v, "cam", "float32", "small"), train(v, "adl", "float32", "small"),
                 train(v, "cam", "float32", "max"), evaluation(v, "float32"),
                 wtl("float32", "small")]
    else:
        r, v, bf, f32 = "resnet50", "vgg16_gap", "bfloat16", "float32"
        cases = [train(r, "cam", bf, "max"), train(r, "cam", f32, "max"),
                 train(v, "cam", bf, "max"), train(v, "cam", f32, "max"),
                 evaluation(r, f32), wtl(bf, "small"),
                 train(r, "adl", bf, "max"), train(v, "adl", bf, "max"),
                 train(r, "cam", bf, "small"), train(r, "cam", f32, "small"),
                 train(v, "cam", bf, "small"), train(v, "cam", f32, "small"),
                 train(r, "adl", f32, "max"), train(v, "adl", f32, "max"),
                 wtl(f32, "small"), wtl(bf, "max"),
                 train(r, "adl", bf, "small"), train(r, "adl", f32, "small"),
                 train(v, "adl", bf, "small"), train(v, "adl", f32, "small"),
                 evaluation(v, f32), wtl(f32, "max")]
    cases = [c for c in cases if c["kind"] in args.kinds]
    for c in cases:
        c["id"] = f"{c['kind']}/{c['model']}/{c['method']}/{c['dtype']}/{c['batch_request']}"
        c["status"] = "planned"
    return cases


def case_config(case: dict, image_size: int):
    """The paper config a case runs (data paths are never read: no data set is loaded)."""
    from wsolax.config import load_config, validate
    from wsolax.methods.where_to_look import scaled_patch_sizes

    if case["method"] == "wtl":
        cfg = load_config(CONFIGS / "cub_wtl_resnet50.py")
        cfg.model.methods.where_to_look.patch_sizes = scaled_patch_sizes(image_size)
        # From random weights the scale-invariant fusion loss diverges within a few steps
        # (seen: NaN at the second step); the config's docstring turns clipping on for training
        # from scratch, as configs/synthetic_wtl.py does. One global-norm reduction per step.
        cfg.optim.clip_grad_norm = 5.0
    else:
        name = "cub_adl_vgg16.py" if case["model"] == "vgg16_gap" else "cub_adl_resnet50.py"
        cfg = load_config(CONFIGS / name)
        if case["method"] == "cam":
            cfg.model.inserts = ()
    # cub_adl_resnet50 is the paper's SE-ResNet50; its docstring's plain-ResNet50 variant (same
    # ADL stages) is the one both sides here build.
    cfg.model.backbone = case["model"]
    cfg.model.dtype = case["dtype"]
    cfg.data.crop_size = image_size
    validate(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------
# wsolax side
# ---------------------------------------------------------------------------------------------


def _flops(stage) -> float | None:
    """XLA's flop count of a Lowered or Compiled program (None where the backend gives none)."""
    try:
        cost = stage.cost_analysis()
    except Exception:  # best effort: not every backend implements cost analysis
        return None
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
        cost = cost[0] if cost else None
    if not cost or not cost.get("flops"):
        return None
    return float(cost["flops"])


class JaxProgram:
    """One wsolax program (train step or CAM extractor) for one case at one batch size."""

    def __init__(self, case: dict, batch: int, args, mesh, init_cache: dict):
        import jax

        from wsolax import sharding
        from wsolax.localization.cams import make_cam_extractor
        from wsolax.models.wsol_model import init_key
        from wsolax.registry import build_model
        from wsolax.training.objectives import build_objective
        from wsolax.training.optim import make_optimizer
        from wsolax.training.state import init_state, model_variables
        from wsolax.training.step import make_train_step

        self.jax, self.sharding, self.mesh = jax, sharding, mesh
        self.model_variables = model_variables
        self.case, self.batch = case, batch
        s = args.image_size
        self.cfg = cfg = case_config(case, s)
        self.model = model = build_model(cfg)
        tx, _ = make_optimizer(cfg.optim, 100, 10_000)
        repl = sharding.replicated(mesh)
        self.init_key = init_key(0)
        init = jax.jit(lambda k: init_state(model, tx, k, (1, s, s, 3)), out_shardings=repl)
        abstract = jax.eval_shape(init, self.init_key)
        # Cases whose states have the same structure (CAM and ADL: ADL has no parameters; batch
        # sizes) share one compiled init: values do not matter for speed, only shapes.
        leaves, tree = jax.tree.flatten(abstract)
        signature = (str(tree), tuple((x.shape, str(x.dtype)) for x in leaves))
        if signature not in init_cache:
            init_cache[signature] = {"lowered": init.lower(self.init_key), "compiled": None}
        self.init_entry = init_cache[signature]

        data = sharding.batch_sharded(mesh)
        images = jax.ShapeDtypeStruct((batch, s, s, 3), np.float32, sharding=data)
        labels = jax.ShapeDtypeStruct((batch,), np.int32, sharding=data)
        self.run_key = jax.random.key(0)
        t0 = time.perf_counter()
        if case["kind"] == "eval":
            self.scoremap = cfg.eval.scoremap
            fn = make_cam_extractor(model, mesh, (s, s), scoremap=self.scoremap)
            self.lowered = fn.lower(model_variables(abstract), images, labels)
        else:
            step = sharding.shard_step(make_train_step(model, tx, build_objective(cfg, 100)),
                                       mesh)
            self.lowered = step.lower(abstract, {"image": images, "label": labels},
                                      self.run_key)
        self.lower_s = time.perf_counter() - t0
        self.flops_lowered = _flops(self.lowered)
        self.compiled = None
        self.compile_s = None
        self.flops_compiled = None

    def compile(self):
        """Runs on a worker thread: XLA's compile (and GPU autotuning) of init and program."""
        entry = self.init_entry
        if entry["compiled"] is None:  # two threads may both compile a shared init: harmless
            entry["compiled"] = entry["lowered"].compile()
        t0 = time.perf_counter()
        self.compiled = self.lowered.compile()
        self.compile_s = time.perf_counter() - t0
        self.flops_compiled = _flops(self.compiled)
        return self

    @property
    def flops(self) -> float | None:
        return self.flops_lowered or self.flops_compiled

    def fresh_state(self):
        return self.jax.block_until_ready(self.init_entry["compiled"](self.init_key))

    def host_batch(self, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        s = self.cfg.data.crop_size
        return {"image": rng.normal(size=(self.batch, s, s, 3)).astype(np.float32),
                "label": rng.integers(0, self.cfg.data.num_classes, self.batch).astype(np.int32)}

    def cost_info(self) -> dict:
        return {"flops_per_step_lowered": self.flops_lowered,
                "flops_per_step_compiled": self.flops_compiled,
                "lower_s": self.lower_s, "compile_s": self.compile_s}


def measure(step, sync, batch: int, args) -> dict:
    """Warm-up, then `args.rounds` windows of back-to-back steps, one sync per window."""
    t0 = time.perf_counter()
    sync(step())
    first = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        sync(step())
    t0 = time.perf_counter()
    sync(step())
    one = time.perf_counter() - t0
    k = max(args.min_steps, min(args.max_steps, math.ceil(args.window_s / max(one, 1e-6))))
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(k):
            out = step()
        sync(out)
        times.append((time.perf_counter() - t0) / k)
    med = statistics.median(times)
    return {"batch": batch, "images_per_s": batch / med, "step_s_median": med,
            "step_s_min": min(times), "step_s_max": max(times), "rounds": args.rounds,
            "steps_per_round": k, "first_call_s": first, "warmup_calls": args.warmup}


def run_jax_train(prog: JaxProgram, args) -> dict:
    jax = prog.jax
    batch = prog.sharding.put_batch(prog.host_batch(), prog.mesh)
    holder = {"state": prog.fresh_state(), "metrics": None}
    losses = []

    def step():
        holder["state"], holder["metrics"] = prog.compiled(holder["state"], batch, prog.run_key)
        return holder

    def sync(h):
        jax.block_until_ready((h["state"], h["metrics"]))
        if not losses:
            losses.append(float(h["metrics"]["loss"]))

    out = measure(step, sync, prog.batch, args)
    out["first_loss"] = losses[0]
    out["last_loss"] = float(holder["metrics"]["loss"])
    out["losses_finite"] = math.isfinite(out["first_loss"]) and math.isfinite(out["last_loss"])
    del holder, batch
    gc.collect()
    return out


# ---------------------------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------------------------

# torchvision's vgg16 `features` in wsolax's stage names (wsolax/models/vgg.py): 3x3 convs with
# bias + ReLU, 2x2/2 max pools; VGG16-GAP drops pool5 and adds conv6 (3x3, 512 -> 1024, ReLU).
VGG16_GAP_LAYOUT = (
    ("conv1_1", 64), ("conv1_2", 64), ("pool1", None),
    ("conv2_1", 128), ("conv2_2", 128), ("pool2", None),
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("pool3", None),
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), ("pool4", None),
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512), ("conv6", 1024),
)


def torch_vgg16_gap(torch, num_classes: int, device, channels_last: bool, seed: int = 0):
    """Parameters of VGG16-GAP + linear head (He normal fan-out convs, zero biases, as
    torchvision); no buffers (no BatchNorm)."""
    gen = torch.Generator().manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    params, cin = {}, 3
    for name, cout in VGG16_GAP_LAYOUT:
        if cout is None:
            continue
        w = torch.randn(cout, cin, 3, 3, generator=gen) * math.sqrt(2.0 / (cout * 9))
        params[name + ".weight"] = w.to(device=device, memory_format=fmt).requires_grad_()
        params[name + ".bias"] = torch.zeros(cout, device=device, requires_grad=True)
        cin = cout
    bound = 1.0 / math.sqrt(cin)
    params["fc.weight"] = ((torch.rand(num_classes, cin, generator=gen) * 2 - 1) * bound
                           ).to(device).requires_grad_()
    params["fc.bias"] = torch.zeros(num_classes, device=device, requires_grad=True)
    return params, {}


def torch_vgg16_gap_forward(torch, F, params, x, *, train: bool, adl: dict | None,
                            adl_points: frozenset):
    for name, cout in VGG16_GAP_LAYOUT:
        if cout is None:
            x = F.max_pool2d(x, 2, 2)
        else:
            x = F.relu(F.conv2d(x, params[name + ".weight"], params[name + ".bias"], padding=1))
        if train and adl is not None and name in adl_points:
            x = rs.torch_adl(torch, x, adl["gamma"], adl["drop_rate"])
    return F.linear(x.mean(dim=(2, 3)), params["fc.weight"], params["fc.bias"])


class TorchTrain:
    """The PyTorch train step of one case: forward, cross-entropy, backward, SGD, and the same
    metrics as wsolax's step (loss, accuracy, gradient norm)."""

    def __init__(self, torch, case: dict, cfg, batch: int, device, channels_last: bool):
        import torch.nn.functional as F

        self.torch, self.F, self.device = torch, F, device
        self.cuda = device.type == "cuda"
        k = cfg.data.num_classes
        stages = frozenset(stage for stage, _ in cfg.model.inserts)
        self.adl = dict(cfg.model.methods.adl) if stages else None
        if case["model"] == "resnet50":
            if stages and stages != frozenset(rs.ADL_POINTS):
                raise ValueError(f"the torch ResNet50 puts ADL at {rs.ADL_POINTS}, the config "
                                 f"at {sorted(stages)}")
            self.params, self.buffers = rs.torch_resnet50(torch, k, device, channels_last)
            self.forward = lambda x: rs.torch_forward(torch, F, self.params, self.buffers, x,
                                                      train=True, adl=self.adl)[0]
            new = ("fc.",)
        else:
            self.params, self.buffers = torch_vgg16_gap(torch, k, device, channels_last)
            self.forward = lambda x: torch_vgg16_gap_forward(torch, F, self.params, x,
                                                             train=True, adl=self.adl,
                                                             adl_points=stages)
            new = ("fc.", "conv6.")  # wsolax's new layers: the head and backbone/wsol_conv6
        s = cfg.data.crop_size
        rng = np.random.default_rng(0)
        images = rng.normal(size=(batch, s, s, 3)).astype(np.float32)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.x = torch.from_numpy(images).permute(0, 3, 1, 2).to(device).contiguous(
            memory_format=fmt)
        self.y = torch.from_numpy(rng.integers(0, k, batch)).to(device)
        self.bf16 = cfg.model.dtype == "bfloat16"
        o = cfg.optim
        backbone = [v for n, v in self.params.items() if not n.startswith(new)]
        head = [v for n, v in self.params.items() if n.startswith(new)]
        self.all_params = backbone + head
        self.opt = torch.optim.SGD(
            [{"params": backbone, "lr": o.lr}, {"params": head, "lr": o.lr * o.new_layer_lr_mult}],
            lr=o.lr, momentum=o.momentum, nesterov=bool(o.nesterov), weight_decay=o.weight_decay)

    def step(self):
        torch, F = self.torch, self.F
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.forward(self.x)
            loss = F.cross_entropy(logits.float(), self.y)
        loss.backward()
        grad_norm = torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(p.grad) for p in self.all_params]))
        self.opt.step()
        accuracy = (logits.detach().argmax(-1) == self.y).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy, "grad_norm": grad_norm}

    def sync(self, _=None):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)


def run_torch_train(torch, case, cfg, batch, device, channels_last, args) -> dict:
    check_simulated_oom(batch, args.simulate_oom_above)
    bench = TorchTrain(torch, case, cfg, batch, device, channels_last)
    losses, last = [], {}

    def step():
        last["m"] = bench.step()
        return last["m"]

    def sync(m):
        bench.sync()
        if not losses:
            losses.append(float(m["loss"]))

    try:
        out = measure(step, sync, batch, args)
        out["first_loss"] = losses[0]
        out["last_loss"] = float(last["m"]["loss"])
        out["losses_finite"] = (math.isfinite(out["first_loss"])
                                and math.isfinite(out["last_loss"]))
    finally:
        del bench, last
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next case's batch may need what this one cached
    out["memory_format"] = "channels_last" if channels_last else "contiguous"
    out["autocast"] = "bfloat16" if case["dtype"] == "bfloat16" else None
    return out


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, args, torch, kind, jax_device, torch_device):
        import jax

        from wsolax import sharding

        self.args, self.torch, self.kind = args, torch, kind
        self.jax = jax
        self.jax_device, self.torch_device = jax_device, torch_device
        self.mesh = sharding.data_mesh([jax_device])
        self.init_cache = {}
        self.programs = {}
        self.cases = plan_cases(args)
        info = rs.machine_info(kind, jax_device, torch)
        self.peaks = device_peaks(jax_device.device_kind)
        self.report = {"schema": SCHEMA, "status": "running",
                       "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                           timespec="seconds"),
                       "args": vars(args), "machine": info, "peak_flops": self.peaks,
                       "targets": dict(TARGETS), "phases": {}, "cases": self.cases}
        self.durations = {}  # kind -> measured case seconds, for the budget estimate

    # -- bookkeeping --------------------------------------------------------------------------
    def write(self):
        self.report["elapsed_s"] = elapsed()
        path = Path(self.args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        # Private working fields (compiled programs) start with "_" and stay out of the file.
        report = dict(self.report, cases=[{k: v for k, v in c.items() if not k.startswith("_")}
                                          for c in self.cases])
        tmp.write_text(json.dumps(report, indent=1, default=str))
        os.replace(tmp, path)  # atomic: a killed run leaves the last complete JSON

    def left(self) -> float:
        return self.args.budget_s - elapsed()

    def first_batch(self, case) -> int:
        if case["batch_request"] == "max":
            return self.args.max_batch
        if case["batch_request"] == "eval":
            return self.args.eval_batch
        return self.args.batch

    def mfu(self, flops, step_s, dtype) -> dict:
        if not flops or not self.peaks:
            return {"mfu": None}
        out = {"mfu": flops / step_s / self.peaks[dtype] if self.peaks.get(dtype) else None}
        if dtype == "float32" and self.peaks.get("tf32"):
            out["mfu_tf32"] = flops / step_s / self.peaks["tf32"]
        return out

    def program(self, case, batch: int) -> JaxProgram:
        """The lowered (maybe compiled) program of `case` at `batch`, made once: a largest-batch
        case that halves down to the small batch runs the small case's program."""
        key = (case["kind"], case["model"], case["method"], case["dtype"], batch)
        if key not in self.programs:
            check_simulated_oom(batch, self.args.simulate_oom_above)
            self.programs[key] = JaxProgram(case, batch, self.args, self.mesh, self.init_cache)
        return self.programs[key]

    # -- phase 1 ------------------------------------------------------------------------------
    def compile_all(self):
        args = self.args
        deadline = args.budget_s * args.compile_share
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.compile_workers)
        futures = {}  # program -> (future, the cases waiting for it)
        t0 = elapsed()
        for case in self.cases:
            if case["status"] != "planned":
                continue
            if elapsed() > deadline:
                continue  # phase 2 lowers and compiles it if the budget still allows
            try:
                prog = self.program(case, self.first_batch(case))
            except Exception as e:  # recorded, the other cases go on
                self._compile_failed(case, e, "lowering")
                continue
            if prog not in futures:
                futures[prog] = (pool.submit(prog.compile), [])
            futures[prog][1].append(case)
        print(f"[{elapsed():6.1f}s] lowered {len(futures)} programs; compiling on "
              f"{args.compile_workers} threads", flush=True)
        for prog, (fut, cases) in futures.items():
            try:
                fut.result(timeout=max(deadline - elapsed(), 0.0))
                print(f"[{elapsed():6.1f}s] compiled {cases[0]['id']} batch {prog.batch} "
                      f"in {prog.compile_s:.1f}s", flush=True)
            except concurrent.futures.TimeoutError:
                if fut.cancel():
                    continue  # phase 2 compiles it if the budget still allows
                try:  # already compiling: let it finish, so that nothing runs during timing
                    fut.result()
                    print(f"[{elapsed():6.1f}s] compiled {cases[0]['id']} batch {prog.batch} "
                          f"in {prog.compile_s:.1f}s (after the compile phase's deadline)",
                          flush=True)
                except Exception as e:
                    for case in cases:
                        self._compile_failed(case, e, "compile")
            except Exception as e:
                for case in cases:
                    self._compile_failed(case, e, "compile")
        pool.shutdown(wait=True)
        self.report["phases"]["compile"] = {"seconds": elapsed() - t0,
                                            "workers": args.compile_workers,
                                            "programs": len(futures), "deadline_s": deadline}
        self.write()

    def _compile_failed(self, case, e, what):
        if is_oom(e) and case["batch_request"] == "max":
            case["_compile_oom"] = True  # phase 2 halves the batch
            return
        case.update(status="error", reason=f"{what}: {type(e).__name__}: {e}"[:2000])
        traceback.print_exc()

    # -- phase 2 ------------------------------------------------------------------------------
    def measure_all(self):
        for case in self.cases:
            if case["status"] != "planned":
                continue
            expected = self.expected(case)
            key = (case["kind"], case["model"], case["method"], case["dtype"],
                   self.first_batch(case))
            prog = self.programs.get(key)
            if prog is None or prog.compiled is None:  # not compiled in phase 1: compile here
                compiles = [p.compile_s for p in self.programs.values() if p.compile_s]
                expected += max(compiles) if compiles else self.args.first_case_s
            if self.left() < expected:
                case.update(status="skipped", reason=f"budget: {self.left():.0f}s left, "
                                                      f"case expected to take {expected:.0f}s")
                self.write()
                continue
            t0 = elapsed()
            print(f"\n[{t0:6.1f}s] {case['id']}", flush=True)
            try:
                if case["kind"] == "eval":
                    self.run_eval(case)
                else:
                    self.run_train(case)
                case["status"] = "ok"
            except Exception as e:
                case.update(status="error", reason=f"{type(e).__name__}: {e}"[:2000])
                traceback.print_exc()
            case.pop("_compile_oom", None)
            case["seconds"] = elapsed() - t0
            self.durations.setdefault(case["kind"] + case["model"], []).append(case["seconds"])
            gc.collect()
            self.write()

    def expected(self, case) -> float:
        seen = self.durations.get(case["kind"] + case["model"])
        if seen:
            return 1.2 * max(seen)
        return self.args.first_case_s

    def halving_on_oom(self, case, batch: int, tried: list, label: str, measure, cleanup=None):
        """`measure(batch)` (a dict), halving the batch on out-of-memory when the case asks for
        the largest batch; the batches that did not fit go into the result."""
        while True:
            try:
                result = measure(batch)
                result["oom_at_batches"] = tried
                return result
            except Exception as e:
                if not (is_oom(e) and case["batch_request"] == "max" and batch > 1):
                    raise
                print(f"   {label}: out of memory at batch {batch}, halving", flush=True)
                tried.append(batch)
                batch //= 2
                gc.collect()
                if cleanup is not None:
                    cleanup()

    def jax_at(self, case, batch: int) -> tuple[JaxProgram, dict]:
        """Measure wsolax at `batch` (compiled now if phase 1 did not); halves on OOM when the
        case asks for the largest batch."""
        tried = []
        if case.pop("_compile_oom", False):  # phase 1 already ran out of memory at this batch
            tried.append(batch)
            batch //= 2
        programs = {}

        def measure(b):
            prog = programs["last"] = self.program(case, b)
            if prog.compiled is None:
                prog.compile()
            result = run_jax_train(prog, self.args)
            result.update(prog.cost_info())
            return result

        result = self.halving_on_oom(case, batch, tried, "wsolax", measure)
        return programs["last"], result

    def torch_at(self, case, cfg, batch: int) -> dict:
        channels_last = self.args.torch_memory_format == "channels_last" or (
            self.args.torch_memory_format == "auto" and self.kind == "gpu")
        cleanup = self.torch.cuda.empty_cache if self.torch_device.type == "cuda" else None
        return self.halving_on_oom(
            case, batch, [], "torch",
            lambda b: run_torch_train(self.torch, case, cfg, b, self.torch_device, channels_last,
                                      self.args), cleanup)

    def run_train(self, case):
        prog, jres = self.jax_at(case, self.first_batch(case))
        jres.update(self.mfu(prog.flops, jres["step_s_median"], case["dtype"]))
        case["jax"] = jres
        print(f"   wsolax batch {jres['batch']}: {jres['images_per_s']:.1f} img/s "
              f"(compile {jres['compile_s']:.1f}s, MFU {jres.get('mfu')})", flush=True)
        self.write()
        if case["kind"] == "wtl" or "torch" not in self.args.frameworks:
            return
        tres = self.torch_at(case, prog.cfg, jres["batch"])
        tres.update(self.mfu(prog.flops, tres["step_s_median"], case["dtype"]))
        case["torch"] = tres
        print(f"   torch  batch {tres['batch']}: {tres['images_per_s']:.1f} img/s", flush=True)
        if tres["batch"] < jres["batch"]:  # compare equal batches: wsolax again at torch's
            case["jax_at_own_largest_batch"] = jres
            prog, jres = self.jax_at(case, tres["batch"])
            jres.update(self.mfu(prog.flops, jres["step_s_median"], case["dtype"]))
            case["jax"] = jres
        case["ratio_jax_over_torch"] = jres["images_per_s"] / tres["images_per_s"]
        print(f"   ratio wsolax/torch: {case['ratio_jax_over_torch']:.2f}", flush=True)

    def run_eval(self, case):
        """The evaluation loop of wsolax.localization.run.collect_split, timed part by part."""
        from bench_evaluator import Data

        from wsolax.evaluation import WSOLEvaluator
        from wsolax.localization.cams import gt_scoremaps

        prog = self.program(case, self.args.eval_batch)
        if prog.compiled is None:
            prog.compile()
        cfg, s, b = prog.cfg, prog.cfg.data.crop_size, prog.batch
        n = max(b, self.args.eval_images // b * b)
        data = Data(n + b, seed=0)  # CUB-like boxes and sizes; the last batch warms up
        variables = prog.model_variables(prog.fresh_state())
        image = prog.host_batch()["image"]  # one random batch, sent again for every batch
        out_hw = (s, s)
        case["jax"] = {"batch": b, "images": n, "scoremap": prog.scoremap,
                       "evaluator_workers": {}, **prog.cost_info()}

        def one_batch(evaluator, start):
            t = [time.perf_counter()]
            labels = data.labels[start:start + b].astype(np.int32)
            dev = prog.sharding.put_batch({"image": image, "label": labels}, prog.mesh)
            out = {k: prog.sharding.local_rows(v) for k, v in
                   prog.compiled(variables, dev["image"], dev["label"]).items()}
            t.append(time.perf_counter())
            maps = gt_scoremaps(out, prog.scoremap, out_hw)
            t.append(time.perf_counter())
            ids = data.ids[start:start + b]
            evaluator.accumulate(ids, maps, labels, top1=out["top1"], top5=out["topk"])
            t.append(time.perf_counter())
            return np.diff(t)

        for workers in self.args.eval_workers:
            kw = dict(input_size=out_hw, cam_curve_interval=cfg.eval.cam_curve_interval,
                      iou_thresholds=tuple(cfg.eval.iou_thresholds), workers=workers)
            with WSOLEvaluator(data.gt_boxes, data.sizes, **kw) as warm:
                one_batch(warm, n)  # compiles the evaluator's kernels, starts its processes
            with WSOLEvaluator(data.gt_boxes, data.sizes, **kw) as evaluator:
                one_batch(evaluator, n)  # warm pool: this evaluator's workers start here
                evaluator.reset()
                parts = np.zeros(3)
                for start in range(0, n, b):
                    parts += one_batch(evaluator, start)
                t0 = time.perf_counter()
                evaluator.compute(threshold_index=500)
                compute_s = time.perf_counter() - t0
            total = parts.sum() + compute_s
            row = {"extract_images_per_s": n / parts[0], "host_scoremaps_images_per_s":
                   n / parts[1], "evaluator_accumulate_images_per_s": n / parts[2],
                   "evaluator_compute_s": compute_s, "total_images_per_s": n / total,
                   "ms_per_image_total": 1e3 * total / n}
            case["jax"]["evaluator_workers"][str(workers)] = row
            if workers == self.args.eval_workers[0]:
                ex = row["extract_images_per_s"]
                case["jax"]["extract_images_per_s"] = ex
                case["jax"]["total_images_per_s"] = row["total_images_per_s"]
                case["jax"].update(self.mfu(prog.flops, b / ex, case["dtype"]))
            print(f"   eval workers {workers}: extract {row['extract_images_per_s']:.0f} img/s, "
                  f"host maps {row['host_scoremaps_images_per_s']:.0f}, evaluator "
                  f"{row['evaluator_accumulate_images_per_s']:.0f}, whole loop "
                  f"{row['total_images_per_s']:.0f} img/s", flush=True)

    # -- summary ------------------------------------------------------------------------------
    def summarise(self):
        rows, checks = [], {}
        for c in self.cases:
            j, t = c.get("jax", {}), c.get("torch", {})
            if c["kind"] != "eval":
                rows.append((c["id"], j.get("batch"), j.get("images_per_s"), t.get("images_per_s"),
                             c.get("ratio_jax_over_torch"), j.get("mfu"), c["status"]))
            if c["kind"] == "train" and c["batch_request"] == "max" and c["method"] == "cam":
                key = f"{c['model']}/{c['dtype']}"
                ratio, mfu = c.get("ratio_jax_over_torch"), j.get("mfu")
                need = TARGETS[f"ratio_{c['dtype']}"]
                checks[f"ratio {key} >= {need}"] = None if ratio is None else ratio >= need
                if c["dtype"] == "bfloat16":
                    checks[f"mfu {key} >= {TARGETS['mfu_bfloat16']}"] = (
                        None if mfu is None else mfu >= TARGETS["mfu_bfloat16"])
        self.report["target_checks"] = checks
        skipped = [c["id"] for c in self.cases if c["status"] == "skipped"]
        errors = [c["id"] for c in self.cases if c["status"] == "error"]
        self.report["skipped"], self.report["errors"] = skipped, errors
        self.report["status"] = "complete" if not skipped and not errors else (
            "partial" if any(c["status"] == "ok" for c in self.cases) else "failed")

        def f(v, fmt):
            return "-" if v is None else format(v, fmt)

        print(f"\n{'case':<44} {'batch':>5} {'wsolax img/s':>12} {'torch img/s':>11} "
              f"{'ratio':>6} {'MFU':>6}  status")
        for r in rows:
            print(f"{r[0]:<44} {f(r[1], 'd'):>5} {f(r[2], '.1f'):>12} {f(r[3], '.1f'):>11} "
                  f"{f(r[4], '.2f'):>6} {f(r[5] and 100 * r[5], '.1f'):>6}  {r[6]}")
        for c in self.cases:
            if c["kind"] == "eval" and c["status"] == "ok":
                for w, row in c["jax"]["evaluator_workers"].items():
                    print(f"{c['id']} (workers {w}): extract {row['extract_images_per_s']:.0f} "
                          f"img/s, whole loop {row['total_images_per_s']:.0f} img/s")
        print("targets: " + "; ".join(f"{k}: {v}" for k, v in checks.items()))
        print(f"status {self.report['status']}; skipped {len(skipped)}, errors {len(errors)}; "
              f"{elapsed():.0f}s of {self.args.budget_s:.0f}s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="accelerator_check.json", help="JSON written after each case")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="wall-time budget from start-up; cases that do not fit are skipped")
    p.add_argument("--compile-share", type=float, default=0.55,
                   help="share of the budget the parallel compile phase may use")
    p.add_argument("--compile-workers", type=int, default=0,
                   help="compile threads (0: min(6, cpu_count // 2), at least 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--tiny", action="store_true",
                   help="CPU smoke run: 16x16 images, batch 2, VGG16-GAP, one-step windows")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch", type=int, default=None, help="the small-batch rows (32)")
    p.add_argument("--max-batch", type=int, default=None, help="largest batch tried (256)")
    p.add_argument("--eval-batch", type=int, default=None, help="the configs' eval batch (64)")
    p.add_argument("--eval-images", type=int, default=None)
    p.add_argument("--eval-workers", type=int, nargs="+", default=None)
    p.add_argument("--wtl-backbone", default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--window-s", type=float, default=None, help="target length of one window")
    p.add_argument("--min-steps", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--first-case-s", type=float, default=None,
                   help="expected duration of a case before one of its kind has run")
    p.add_argument("--kinds", nargs="+", default=["train", "eval", "wtl"],
                   choices=["train", "eval", "wtl"], help="which kinds of case to run")
    p.add_argument("--frameworks", nargs="+", default=["jax", "torch"], choices=["jax", "torch"])
    p.add_argument("--torch-memory-format", default="auto",
                   choices=["auto", "channels_last", "contiguous"],
                   help="auto: channels_last on the GPU (what a user sets there), else contiguous")
    p.add_argument("--torch-threads", type=int, default=0, help="0: os.cpu_count()")
    p.add_argument("--simulate-oom-above", type=int, default=0,
                   help="testing: treat batches above N as out of memory (0: off)")
    args = p.parse_args(argv)
    full = dict(image_size=224, batch=32, max_batch=256, eval_batch=64, eval_images=512,
                eval_workers=sorted({1, min(8, os.cpu_count() or 1)}), wtl_backbone="resnet50",
                rounds=3, warmup=2, window_s=0.5, min_steps=3, max_steps=30, first_case_s=30.0)
    # 16 px: VGG16-GAP's four pools leave a 1x1 map; Where to Look on the tiny test backbone
    # (on VGG16-GAP its step alone took 43 s to compile on a 2-core CPU).
    tiny = dict(image_size=16, batch=2, max_batch=4, eval_batch=2, eval_images=4,
                eval_workers=[1], wtl_backbone="tiny", rounds=2, warmup=1, window_s=0.0,
                min_steps=1, max_steps=1, first_case_s=5.0)
    for k, v in (tiny if args.tiny else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.compile_workers <= 0:
        args.compile_workers = max(1, min(6, (os.cpu_count() or 2) // 2))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    kind, jax_device, torch_device = rs.pick_device(args.device)
    import torch

    torch.set_num_threads(args.torch_threads or os.cpu_count())
    if kind == "gpu":
        # What a user sets on a GPU: cuDNN picks the fastest kernels for fixed shapes, and
        # float32 convolutions / matmuls may use TF32, as XLA's default precision does.
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    runner = Runner(args, torch, kind, jax_device, torch_device)
    print(f"[{elapsed():6.1f}s] {jax_device.device_kind} ({kind}); peaks {runner.peaks}; "
          f"{len(runner.cases)} cases, budget {args.budget_s:.0f}s", flush=True)
    runner.write()
    runner.compile_all()
    runner.measure_all()
    runner.report["machine"]["loadavg_at_end"] = rs._loadavg()
    runner.summarise()
    runner.write()
    print(f"wrote {args.out}")
    return 0 if runner.report["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
