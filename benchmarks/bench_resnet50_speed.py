"""Train-step and eval images/s of ResNet50-CAM and ResNet50-ADL: wsolax (JAX) vs PyTorch.

    python benchmarks/bench_resnet50_speed.py [--image-size 224] [--batch 32] [--steps 10]
        [--warmup 2] [--dtypes float32 bfloat16] [--methods cam adl] [--device auto|cpu|gpu]
        [--torch-memory-format auto|channels_last|contiguous] [--torch-threads N]
        [--frameworks jax torch] [--json out.json]

Both sides run the same work on the same random batch, in one process:

* train step: forward (BatchNorm in training mode, ADL active), softmax cross-entropy, backward,
  SGD with Nesterov momentum 0.9 and weight decay 1e-4 (the head at 10x the backbone's learning
  rate, as wsolax's optimizer does), plus the step's metrics (loss, accuracy, gradient norm).
  wsolax: `make_train_step` jitted with the state donated. PyTorch: a functional ResNet50 written
  below with torch.nn.functional (parameters are leaf tensors, BN running statistics are buffers),
  `torch.optim.SGD`, eager mode.
* eval: forward in eval mode + CAMs of the ground-truth and the top-1 class (the classifier's
  weights of that class over the 14x14 map) + top-k + bicubic upsampling to the input size +
  per-map min-max normalisation. wsolax: `make_cam_extractor(scoremap="device_float32")` (the
  evaluator's on-device option; its default makes the maps on the host, in float64). PyTorch:
  the same steps under `torch.inference_mode()`.
* forward: the plain eval-mode forward returning logits (like for like, no CAM work).

bfloat16: wsolax computes in bfloat16 with float32 parameters and BatchNorm statistics
(`model.dtype`); PyTorch runs under `torch.autocast(<device>, dtype=torch.bfloat16)`.
PyTorch's memory format (`--torch-memory-format`, reported per row): `auto` takes channels_last
on the GPU (cuDNN's fast layout) and, on the CPU, whichever of channels_last / contiguous ran one
train step + one forward faster (timed once per dtype before the measurement). PyTorch uses
`os.cpu_count()` threads unless `--torch-threads` says otherwise.

Measure on a quiet machine: PyTorch's OpenMP kernels slow down many-fold when other processes
take their cores (a barrier waits for a descheduled thread; seen: ResNet50 forward 20x slower on
2 busy cores), XLA's work-stealing pool much less, so a busy machine flatters JAX. The script
records the load average and warns when it is high. `--frameworks jax` / `--frameworks torch`
measures one side alone, to check that the two do not disturb each other in one process.

Protocol: each (method, dtype) is built on both sides, compiled / warmed up (`--warmup` calls of
each function, not timed), then measured in `--steps` rounds; a round times one jax train step,
one torch train step, one jax eval, one torch eval, one jax forward, one torch forward, with the
framework that goes first alternating between rounds, so load drift hits both alike. Reported:
median (and min) seconds per call, images/s from the median, and jax/torch = jax images/s divided
by torch images/s (>1: wsolax is faster). JAX compile time (lowering + XLA compile, AOT) is
reported separately and is not in any throughput. Losses are checked to be finite on both sides
(the two implementations are different code with different initialisations, so outputs are not
compared). On the GPU every timed call ends with `block_until_ready` / `torch.cuda.synchronize`.
`--device auto` uses the GPU when both JAX and PyTorch see one, else the CPU; on a GPU machine
run once more with `--device cpu` for the CPU numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import resource
import statistics
import time

import numpy as np

# JAX and PyTorch share the GPU in one process: keep JAX from preallocating 75% of its memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

# ---------------------------------------------------------------------------------------------
# PyTorch side: a functional ResNet50 in the WSOL form (torchvision layout, layer4 stride 1).
# ---------------------------------------------------------------------------------------------

# (blocks, planes, stride of the first block) per stage; bottleneck expansion 4.
RESNET50_STAGES = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 1))
EXPANSION = 4
# ADL after layer3's first block, layer4's first block and layer4's end (placements.py).
ADL_POINTS = ("layer3_0", "layer4_0", "layer4")


def torch_resnet50(torch, num_classes: int, device, channels_last: bool, seed: int = 0):
    """Parameters (leaf tensors, requires_grad) and BN buffers of a ResNet50 + linear head.

    Initialisation as torchvision (He normal fan-out for convs, BN 1/0, default Linear init); the
    values do not matter for speed, only that the loss stays finite.
    """
    gen = torch.Generator().manual_seed(seed)
    params, buffers = {}, {}
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def conv(name, cin, cout, k):
        std = math.sqrt(2.0 / (cout * k * k))
        w = torch.randn(cout, cin, k, k, generator=gen) * std
        params[name + ".weight"] = w.to(device=device, memory_format=fmt).requires_grad_()

    def bn(name, c):
        params[name + ".weight"] = torch.ones(c, device=device, requires_grad=True)
        params[name + ".bias"] = torch.zeros(c, device=device, requires_grad=True)
        buffers[name + ".running_mean"] = torch.zeros(c, device=device)
        buffers[name + ".running_var"] = torch.ones(c, device=device)

    conv("conv1", 3, 64, 7)
    bn("bn1", 64)
    cin = 64
    for i, (n, planes, stride) in enumerate(RESNET50_STAGES, start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            conv(p + ".conv1", cin, planes, 1)
            bn(p + ".bn1", planes)
            conv(p + ".conv2", planes, planes, 3)
            bn(p + ".bn2", planes)
            conv(p + ".conv3", planes, planes * EXPANSION, 1)
            bn(p + ".bn3", planes * EXPANSION)
            s = stride if j == 0 else 1
            if s != 1 or cin != planes * EXPANSION:
                conv(p + ".downsample.0", cin, planes * EXPANSION, 1)
                bn(p + ".downsample.1", planes * EXPANSION)
            cin = planes * EXPANSION
    bound = 1.0 / math.sqrt(cin)
    params["fc.weight"] = ((torch.rand(num_classes, cin, generator=gen) * 2 - 1) * bound
                           ).to(device).requires_grad_()
    params["fc.bias"] = ((torch.rand(num_classes, generator=gen) * 2 - 1) * bound
                         ).to(device).requires_grad_()
    return params, buffers


def torch_adl(torch, x, gamma: float, drop_rate: float):
    """ADL (training mode) on NCHW x: channel-mean attention; drop mask (attention < gamma * max)
    or sigmoid importance map, one random choice per batch (drop with probability drop_rate).
    The choice is a tensor `where`, so no host synchronisation on the GPU."""
    attention = x.float().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    threshold = gamma * attention.amax(dim=(2, 3), keepdim=True)
    drop_mask = (attention < threshold).float()
    importance = torch.sigmoid(attention)
    use_drop = torch.rand((), device=x.device) < drop_rate
    return x * torch.where(use_drop, drop_mask, importance).to(x.dtype)


def torch_forward(torch, F, params, buffers, x, *, train: bool, adl: dict | None):
    """Images (B, 3, H, W) -> (logits (B, K), features (B, 2048, H/16, W/16))."""

    def bn(name, h):
        return F.batch_norm(h, buffers[name + ".running_mean"], buffers[name + ".running_var"],
                            params[name + ".weight"], params[name + ".bias"], training=train,
                            momentum=0.1, eps=1e-5)

    def maybe_adl(point, h):
        if train and adl is not None and point in ADL_POINTS:
            return torch_adl(torch, h, adl["gamma"], adl["drop_rate"])
        return h

    h = F.conv2d(x, params["conv1.weight"], stride=2, padding=3)
    h = F.relu(bn("bn1", h))
    h = F.max_pool2d(h, 3, stride=2, padding=1)
    for i, (n, _, stride) in enumerate(RESNET50_STAGES, start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            s = stride if j == 0 else 1
            out = F.relu(bn(p + ".bn1", F.conv2d(h, params[p + ".conv1.weight"])))
            out = F.relu(bn(p + ".bn2", F.conv2d(out, params[p + ".conv2.weight"], stride=s,
                                                  padding=1)))
            out = bn(p + ".bn3", F.conv2d(out, params[p + ".conv3.weight"]))
            if p + ".downsample.0.weight" in params:
                shortcut = bn(p + ".downsample.1",
                              F.conv2d(h, params[p + ".downsample.0.weight"], stride=s))
            else:
                shortcut = h
            h = maybe_adl(f"layer{i}_{j}", F.relu(out + shortcut))
        h = maybe_adl(f"layer{i}", h)
    logits = F.linear(h.mean(dim=(2, 3)), params["fc.weight"], params["fc.bias"])
    return logits, h


class TorchBench:
    """One (method, dtype) on the PyTorch side: train step, eval (CAM) step, forward."""

    def __init__(self, torch, method: str, dtype: str, args, device, images_nhwc, labels,
                 memory_format: str):
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.device = device
        self.cuda = device.type == "cuda"
        channels_last = memory_format == "channels_last"
        self.params, self.buffers = torch_resnet50(torch, args.num_classes, device, channels_last)
        self.adl = {"gamma": 0.9, "drop_rate": 0.75} if method == "adl" else None
        self.out_hw = (args.image_size, args.image_size)
        self.top_k = min(5, args.num_classes)
        x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2)  # NCHW view of NHWC memory
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.x = x.to(device).contiguous(memory_format=fmt)
        self.y = torch.from_numpy(labels.astype(np.int64)).to(device)
        if dtype == "bfloat16":
            self.autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)
        else:
            self.autocast = contextlib.nullcontext
        head = [v for k, v in self.params.items() if k.startswith("fc.")]
        backbone = [v for k, v in self.params.items() if not k.startswith("fc.")]
        self.all_params = backbone + head
        self.opt = torch.optim.SGD([{"params": backbone, "lr": 0.1},
                                    {"params": head, "lr": 1.0}],
                                   lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def train_step(self):
        torch, F = self.torch, self.F
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            logits, _ = torch_forward(torch, F, self.params, self.buffers, self.x, train=True,
                                      adl=self.adl)
            loss = F.cross_entropy(logits.float(), self.y)
        loss.backward()
        grads = [p.grad for p in self.all_params]
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                          for g in grads]))
        self.opt.step()
        accuracy = (logits.detach().argmax(-1) == self.y).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy, "grad_norm": grad_norm}

    def eval_step(self):
        torch, F = self.torch, self.F
        with torch.inference_mode(), self.autocast():
            logits, features = torch_forward(torch, F, self.params, self.buffers, self.x,
                                             train=False, adl=None)
            logits = logits.float()
            top1 = logits.argmax(-1)
            topk = logits.topk(self.top_k, dim=-1).indices
            classes = torch.stack([self.y, top1], dim=1)  # (B, 2): ground truth, top-1
            weights = self.params["fc.weight"][classes]  # (B, 2, C)
            cams = torch.einsum("bchw,bnc->bnhw", features, weights.to(features.dtype))
            cams = cams.float() / features.shape[1]
            maps = F.interpolate(cams, size=self.out_hw, mode="bicubic", align_corners=False)
            shifted = maps - maps.amin(dim=(2, 3), keepdim=True)
            peak = shifted.amax(dim=(2, 3), keepdim=True)
            valid = (peak > 0) & ~torch.isnan(maps).any(dim=3, keepdim=True).any(dim=2,
                                                                                  keepdim=True)
            maps = torch.where(valid, shifted / torch.where(valid, peak, torch.ones_like(peak)),
                               torch.zeros_like(shifted))
        return {"logits": logits, "top1": top1, "topk": topk, "scoremap_gt": maps[:, 0],
                "scoremap_top1": maps[:, 1]}

    def forward(self):
        with self.torch.inference_mode(), self.autocast():
            logits, _ = torch_forward(self.torch, self.F, self.params, self.buffers, self.x,
                                      train=False, adl=None)
        return logits

    def timed(self, fn):
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out


# ---------------------------------------------------------------------------------------------
# JAX side: wsolax's own model, train step and CAM extractor.
# ---------------------------------------------------------------------------------------------


class JaxBench:
    """One (method, dtype) on the wsolax side; functions compiled ahead of time (timed)."""

    def __init__(self, method: str, dtype: str, args, device, images_nhwc, labels):
        import jax

        from wsolax.config import base_config
        from wsolax.localization.cams import make_cam_extractor
        from wsolax.methods.placements import paper_inserts
        from wsolax.registry import build_model
        from wsolax import sharding
        from wsolax.training.optim import make_optimizer
        from wsolax.models.wsol_model import init_key
        from wsolax.training.state import init_state, model_variables
        from wsolax.training.step import make_train_step

        self.jax = jax
        self.model_variables = model_variables
        cfg = base_config()
        cfg.model.backbone = "resnet50"
        cfg.data.num_classes = args.num_classes
        cfg.model.dtype = dtype
        if method == "adl":
            cfg.model.inserts = paper_inserts("adl", "resnet50")
            cfg.model.methods.adl = {"gamma": 0.9, "drop_rate": 0.75}
        model = build_model(cfg)
        tx, _ = make_optimizer(cfg.optim, 100, 1000)
        s = args.image_size
        mesh = sharding.data_mesh([device])  # one device, like the one torch uses
        self.compile_s = {}
        self.temp_bytes = {}  # XLA's scratch memory per compiled program

        with jax.default_device(device):
            init = jax.jit(lambda k: init_state(model, tx, k, (1, s, s, 3)))
            key = init_key(0)
            init_fn, self.compile_s["init"], _ = self._aot("init", init, key)
            self.state = jax.block_until_ready(init_fn(key))
        batch = sharding.put_batch({"image": images_nhwc, "label": labels}, mesh)
        self.batch = batch
        self.run_key = jax.device_put(jax.random.key(0), device)

        step = jax.jit(make_train_step(model, tx), donate_argnums=0)
        self.train_fn, self.compile_s["train_step"], self.train_flops = self._aot(
            "train_step", step, self.state, batch, self.run_key)

        # On-device score maps, like the PyTorch side of this comparison.
        extract = make_cam_extractor(model, mesh, (s, s), scoremap="device_float32")
        variables = model_variables(self.state)
        self.eval_fn, self.compile_s["eval_cam"], self.eval_flops = self._aot(
            "eval_cam", extract, variables, batch["image"], batch["label"])

        forward = jax.jit(lambda v, x: model.apply(v, x, train=False)["logits"])
        self.forward_fn, self.compile_s["forward"], self.forward_flops = self._aot(
            "forward", forward, variables, batch["image"])

    def _aot(self, name, fn, *args):
        """Lower + compile ahead of time; returns (compiled, seconds, XLA's flop count or None)."""
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        seconds = time.perf_counter() - t0
        try:
            mem = compiled.memory_analysis()
            self.temp_bytes[name] = int(mem.temp_size_in_bytes)
        except Exception:  # best effort
            pass
        flops = None
        try:
            cost = compiled.cost_analysis()
            if isinstance(cost, (list, tuple)):
                cost = cost[0] if cost else None
            if cost and cost.get("flops", 0) > 0:
                flops = float(cost["flops"])
        except Exception:  # cost analysis is best effort (not every backend provides it)
            flops = None
        return compiled, seconds, flops

    def train_step(self):
        self.state, metrics = self.train_fn(self.state, self.batch, self.run_key)
        return metrics

    def eval_step(self):
        return self.eval_fn(self.model_variables(self.state), self.batch["image"],
                            self.batch["label"])

    def forward(self):
        return self.forward_fn(self.model_variables(self.state), self.batch["image"])

    def timed(self, fn):
        t0 = time.perf_counter()
        out = fn()
        self.jax.block_until_ready((self.state, out))  # the train step's new state too
        return time.perf_counter() - t0, out


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

KINDS = ("train", "eval", "forward")
FRAMEWORKS = ("jax", "torch")


def pick_device(requested: str):
    """-> ('cpu' | 'gpu', jax device, torch device); configures JAX before its backends start."""
    import jax
    import torch

    if requested == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return "cpu", jax.devices("cpu")[0], torch.device("cpu")
    try:
        jax_gpu = jax.devices()[0].platform == "gpu"
    except RuntimeError:
        jax_gpu = False
    torch_gpu = torch.cuda.is_available()
    if jax_gpu and torch_gpu:
        return "gpu", jax.devices()[0], torch.device("cuda", 0)
    if requested == "gpu":
        raise SystemExit(f"--device gpu: JAX sees a GPU: {jax_gpu}, PyTorch sees one: {torch_gpu}")
    return "cpu", jax.devices("cpu")[0], torch.device("cpu")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(kind: str, jax_device, torch) -> dict:
    import jax

    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "device": kind,
        "jax_version": jax.__version__,
        "jax_backend": jax_device.platform,
        "jax_device_kind": jax_device.device_kind,
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_mkldnn": bool(torch.backends.mkldnn.is_available()),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "XLA_PYTHON_CLIENT_MEM_FRACTION": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", ""),
        "loadavg_at_start": _loadavg(),
    }
    if kind == "gpu":
        info["gpu_name"] = torch.cuda.get_device_name(0)
        info["torch_cuda"] = torch.version.cuda
        info["torch_cudnn"] = torch.backends.cudnn.version()
        info["torch_float32_matmul_precision"] = torch.get_float32_matmul_precision()
        info["torch_cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    return info


def summarise(times: list[float], batch: int) -> dict:
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times), "n": len(times),
            "images_per_s": batch / med}


def choose_memory_format(torch, dtype, args, kind, torch_device, images,
                         labels) -> tuple[str, dict]:
    """`--torch-memory-format auto`: channels_last on the GPU; on the CPU the faster of the two
    for one torch train step + one forward (after one warm-up call each)."""
    if args.torch_memory_format != "auto":
        return args.torch_memory_format, {}
    if kind == "gpu":
        return "channels_last", {}
    trial = {}
    for fmt in ("channels_last", "contiguous"):
        tb = TorchBench(torch, "cam", dtype, args, torch_device, images, labels, fmt)
        tb.train_step()
        tb.forward()
        trial[fmt] = tb.timed(tb.train_step)[0] + tb.timed(tb.forward)[0]
        del tb
        gc.collect()
    best = min(trial, key=trial.get)
    print(f"   torch memory format for {dtype}: {best} (train+forward s: "
          + ", ".join(f"{k} {v:.2f}" for k, v in trial.items()) + ")", flush=True)
    return best, trial


def bench_one(method: str, dtype: str, args, torch, devices, images, labels,
              memory_format: str) -> dict:
    jax_device, torch_device = devices
    print(f"\n== {method} / {dtype}: building and compiling ...", flush=True)
    benches = {}
    result = {"method": method, "dtype": dtype, "checks": {}}
    if "jax" in args.frameworks:
        t0 = time.perf_counter()
        benches["jax"] = jb = JaxBench(method, dtype, args, jax_device, images, labels)
        build_s = time.perf_counter() - t0
        print("   jax compile (s): " + ", ".join(f"{k} {v:.1f}" for k, v in jb.compile_s.items())
              + f"  [build incl. init: {build_s:.1f}]", flush=True)
        result["jax"] = {"compile_s": jb.compile_s, "build_s": build_s,
                         "xla_temp_bytes": jb.temp_bytes}
        flops = {"train": jb.train_flops, "eval": jb.eval_flops, "forward": jb.forward_flops}
    else:
        flops = {}
    if "torch" in args.frameworks:
        benches["torch"] = TorchBench(torch, method, dtype, args, torch_device, images, labels,
                                      memory_format)
        result["torch"] = {"memory_format": memory_format,
                           "autocast": "bfloat16" if dtype == "bfloat16" else None}
    fns = {name: {"train": b.train_step, "eval": b.eval_step, "forward": b.forward}
           for name, b in benches.items()}

    def loss_of(metrics) -> float:
        return float(metrics["loss"])  # a 0-d jax array or torch tensor

    first_call = {}
    for name, b in benches.items():
        first_call[name] = {}
        for k in KINDS:
            first_call[name][k], out = b.timed(fns[name][k])
            if k == "train":
                result["checks"][name] = {"first_loss": loss_of(out)}
            for _ in range(args.warmup - 1):
                b.timed(fns[name][k])
        result[name]["first_call_s"] = first_call[name]
    print("   first call (s): " + "; ".join(
        f"{n} " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()) for n, d in first_call.items()),
        flush=True)

    times = {name: {k: [] for k in KINDS} for name in benches}
    last = {}
    names = list(benches)
    for r in range(args.steps):
        order = names if r % 2 == 0 else names[::-1]
        for k in KINDS:
            for name in order:
                dt, out = benches[name].timed(fns[name][k])
                times[name][k].append(dt)
                if k == "train":
                    last[name] = out
        print(f"   round {r + 1}/{args.steps}: " + "  ".join(
            f"{k} " + " ".join(f"{n} {times[n][k][-1]:.3f}s" for n in names) for k in KINDS),
            flush=True)

    for name in benches:
        c = result["checks"][name]
        c["last_loss"] = loss_of(last[name])
        c["finite"] = math.isfinite(c["first_loss"]) and math.isfinite(c["last_loss"])
        if not c["finite"]:
            print(f"   WARNING: non-finite {name} loss: {c}", flush=True)

    for k in KINDS:
        for name in benches:
            s = summarise(times[name][k], args.batch)
            if flops.get(k):
                # XLA's count for the wsolax program, used for both (same network, same work).
                s["gflop_per_s_xla_count"] = flops[k] / s["median_s"] / 1e9
            result[name][k] = s
        if "jax" in benches:
            result["jax"][k]["xla_flops_per_call"] = flops[k]
    if len(benches) == 2:
        result["ratio_jax_over_torch"] = {
            k: result["jax"][k]["images_per_s"] / result["torch"][k]["images_per_s"]
            for k in KINDS}
    del benches, fns, last
    gc.collect()
    return result


def print_table(results: list[dict], info: dict, args) -> None:
    print(f"\nResNet50 WSOL, {args.image_size}x{args.image_size}, batch {args.batch}, "
          f"{args.steps} timed rounds (median); device: {info['device']} "
          f"({info.get('gpu_name') or info['processor']}, {info['cpu_count']} CPUs, "
          f"torch {info['torch_num_threads']} threads); torch {info['torch_version']} eager")

    def cell(r, name, k, key, fmt):
        v = r.get(name, {}).get(k, {}).get(key)
        return format(v, fmt) if v else "-"

    head = (f"{'method':<6} {'dtype':<9} {'what':<8} {'jax img/s':>10} {'torch img/s':>12} "
            f"{'jax/torch':>10} {'jax ms':>9} {'torch ms':>9} {'jax GF/s':>9} {'torch GF/s':>10}"
            f"  torch layout")
    print(head)
    print("-" * len(head))
    for r in results:
        for k in KINDS:
            ratio = r.get("ratio_jax_over_torch", {}).get(k)
            jm = r.get("jax", {}).get(k, {}).get("median_s")
            tm = r.get("torch", {}).get(k, {}).get("median_s")
            print(f"{r['method']:<6} {r['dtype']:<9} {k:<8} "
                  f"{cell(r, 'jax', k, 'images_per_s', '.2f'):>10} "
                  f"{cell(r, 'torch', k, 'images_per_s', '.2f'):>12} "
                  f"{(format(ratio, '.2f') if ratio else '-'):>10} "
                  f"{(format(jm * 1e3, '.1f') if jm else '-'):>9} "
                  f"{(format(tm * 1e3, '.1f') if tm else '-'):>9} "
                  f"{cell(r, 'jax', k, 'gflop_per_s_xla_count', '.1f'):>9} "
                  f"{cell(r, 'torch', k, 'gflop_per_s_xla_count', '.1f'):>10}"
                  f"  {r.get('torch', {}).get('memory_format', '-')}")
    if any("jax" in r for r in results):
        print("\nJAX compile seconds (AOT lower+compile, excluded from throughput):")
        for r in results:
            if "jax" in r:
                print(f"  {r['method']:<6} {r['dtype']:<9} " + ", ".join(
                    f"{k} {v:.1f}" for k, v in r["jax"]["compile_s"].items()))
    print("losses (first -> last timed step): " + "; ".join(
        f"{r['method']}/{r['dtype']} " + " ".join(
            f"{n} {c['first_loss']:.3f}->{c['last_loss']:.3f}" for n, c in r["checks"].items())
        for r in results))
    print(f"load average at start {info['loadavg_at_start']}, at end {info.get('loadavg_at_end')}; "
          f"peak RSS {info.get('peak_rss_mb')} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=200)
    p.add_argument("--steps", type=int, default=10, help="timed rounds")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed calls of each function before timing (>= 1)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                   choices=["float32", "bfloat16"])
    p.add_argument("--methods", nargs="+", default=["cam", "adl"], choices=["cam", "adl"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS,
                   help="measure only one side (e.g. to check the two do not disturb each other)")
    p.add_argument("--torch-memory-format", default="auto",
                   choices=["auto", "channels_last", "contiguous"],
                   help="auto: channels_last on the GPU, the faster one (timed) on the CPU")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch.set_num_threads (0: os.cpu_count())")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    args.warmup = max(1, args.warmup)
    if args.steps < 1:
        p.error("--steps must be >= 1")

    kind, jax_device, torch_device = pick_device(args.device)
    import torch

    torch.set_num_threads(args.torch_threads or os.cpu_count())
    if kind == "gpu":
        torch.backends.cudnn.benchmark = True
        # XLA uses TF32 for float32 convolutions and matmuls on Ampere+ by default; let cuDNN and
        # cuBLAS do the same so float32 compares like for like.
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    info = machine_info(kind, jax_device, torch)
    print(json.dumps(info, indent=1), flush=True)
    load = info["loadavg_at_start"]
    if kind == "cpu" and load and load[0] > 0.5:
        print(f"WARNING: 1-minute load average {load[0]} on {os.cpu_count()} CPUs: other work is "
              "running. PyTorch's OpenMP kernels slow down many-fold when their threads are "
              "descheduled (XLA's thread pool much less), so CPU numbers from a busy machine "
              "are not comparable.", flush=True)

    rng = np.random.default_rng(0)
    s = args.image_size
    images = rng.normal(size=(args.batch, s, s, 3)).astype(np.float32)
    labels = rng.integers(0, args.num_classes, args.batch).astype(np.int32)

    results, format_trials = [], {}
    for dtype in args.dtypes:
        fmt = args.torch_memory_format
        if "torch" in args.frameworks:
            fmt, format_trials[dtype] = choose_memory_format(torch, dtype, args, kind,
                                                             torch_device, images, labels)
        for method in args.methods:
            results.append(bench_one(method, dtype, args, torch, (jax_device, torch_device),
                                     images, labels, fmt))
    info["loadavg_at_end"] = _loadavg()
    info["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print_table(results, info, args)
    if args.json:
        report = {"args": vars(args), "machine": info, "results": results,
                  "torch_memory_format_trials_s": format_trials,
                  "ratio": "jax images/s / torch images/s (>1: wsolax faster)"}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
