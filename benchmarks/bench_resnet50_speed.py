"""Train-step and eval images/s of ResNet50-CAM and ResNet50-ADL: wsolax (JAX) vs PyTorch.

    python benchmarks/bench_resnet50_speed.py [--image-size 224] [--batch 32] [--steps 10]
        [--warmup 2] [--dtypes float32 bfloat16] [--methods cam adl] [--device auto|cpu|gpu]
        [--torch-memory-format channels_last|contiguous] [--json out.json]

Both sides run the same work on the same random batch, in one process:

* train step: forward (BatchNorm in training mode, ADL active), softmax cross-entropy, backward,
  SGD with Nesterov momentum 0.9 and weight decay 1e-4 (the head at 10x the backbone's learning
  rate, as wsolax's optimizer does), plus the step's metrics (loss, accuracy, gradient norm).
  wsolax: `make_train_step` jitted with the state donated. PyTorch: a functional ResNet50 written
  below with torch.nn.functional (parameters are leaf tensors, BN running statistics are buffers),
  `torch.optim.SGD`, eager mode.
* eval: forward in eval mode + CAMs of the ground-truth and the top-1 class (the classifier's
  weights of that class over the 14x14 map) + top-k + bicubic upsampling to the input size +
  per-map min-max normalisation. wsolax: `make_cam_extractor` (what the evaluator runs). PyTorch:
  the same steps under `torch.inference_mode()`.
* forward: the plain eval-mode forward returning logits (like for like, no CAM work).

bfloat16: wsolax computes in bfloat16 with float32 parameters and BatchNorm statistics
(`model.dtype`); PyTorch runs under `torch.autocast(<device>, dtype=torch.bfloat16)`.
PyTorch uses channels_last tensors by default (`--torch-memory-format`); that is what oneDNN
(CPU) and cuDNN (GPU) are fastest with for convolutions, and it is reported in the output.

Protocol: each (method, dtype) is built on both sides, compiled / warmed up (`--warmup` calls of
each function, not timed), then measured in `--steps` rounds; a round times one jax train step,
one torch train step, one jax eval, one torch eval, one jax forward, one torch forward, with the
framework that goes first alternating between rounds, so load drift hits both alike. Reported:
median (and min) seconds per call, images/s from the median, and jax/torch = jax images/s divided
by torch images/s (>1: wsolax is faster). JAX compile time (lowering + XLA compile, AOT) is
reported separately and is not in any throughput. Losses are checked to be finite on both sides
(the two implementations are different code with different initialisations, so outputs are not
compared). On the GPU every timed call ends with `block_until_ready` / `torch.cuda.synchronize`.
`--device auto` uses the GPU when both JAX and PyTorch see one, else the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import time

import numpy as np

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

    def __init__(self, torch, method: str, dtype: str, args, device, images_nhwc, labels):
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.device = device
        self.cuda = device.type == "cuda"
        channels_last = args.torch_memory_format == "channels_last"
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
        from wsolax.evaluation.cams import make_cam_extractor
        from wsolax.methods.placements import paper_inserts
        from wsolax.models.registry import build_model
        from wsolax.training import sharding
        from wsolax.training.optim import make_optimizer
        from wsolax.training.state import init_key, init_state, model_variables
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

        with jax.default_device(device):
            init = jax.jit(lambda k: init_state(model, tx, k, (1, s, s, 3)))
            key = init_key(0)
            init_fn, self.compile_s["init"], _ = self._aot(init, key)
            self.state = jax.block_until_ready(init_fn(key))
        batch = sharding.put_batch({"image": images_nhwc, "label": labels}, mesh)
        self.batch = batch
        self.run_key = jax.device_put(jax.random.key(0), device)

        step = jax.jit(make_train_step(model, tx), donate_argnums=0)
        self.train_fn, self.compile_s["train_step"], self.train_flops = self._aot(
            step, self.state, batch, self.run_key)

        extract = make_cam_extractor(model, mesh, (s, s))
        variables = model_variables(self.state)
        self.eval_fn, self.compile_s["eval_cam"], self.eval_flops = self._aot(
            extract, variables, batch["image"], batch["label"])

        forward = jax.jit(lambda v, x: model.apply(v, x, train=False)["logits"])
        self.forward_fn, self.compile_s["forward"], self.forward_flops = self._aot(
            forward, variables, batch["image"])

    def _aot(self, fn, *args):
        """Lower + compile ahead of time; returns (compiled, seconds, XLA's flop count or None)."""
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        seconds = time.perf_counter() - t0
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


def machine_info(kind: str, jax_device, torch, args) -> dict:
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
        "torch_memory_format": args.torch_memory_format,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
    }
    if kind == "gpu":
        info["gpu_name"] = torch.cuda.get_device_name(0)
        info["torch_cuda"] = torch.version.cuda
        info["torch_cudnn"] = torch.backends.cudnn.version()
        info["torch_float32_matmul_precision"] = torch.get_float32_matmul_precision()
        info["torch_cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def summarise(times: list[float], batch: int) -> dict:
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times), "n": len(times),
            "images_per_s": batch / med}


def bench_one(method: str, dtype: str, args, kind: str, jax_device, torch, torch_device,
              images, labels) -> dict:
    print(f"\n== {method} / {dtype}: building and compiling ...", flush=True)
    t0 = time.perf_counter()
    jb = JaxBench(method, dtype, args, jax_device, images, labels)
    jax_build_s = time.perf_counter() - t0
    print("   jax compile (s): " + ", ".join(f"{k} {v:.1f}" for k, v in jb.compile_s.items())
          + f"  [build incl. init: {jax_build_s:.1f}]", flush=True)
    tb = TorchBench(torch, method, dtype, args, torch_device, images, labels)
    benches = {"jax": jb, "torch": tb}
    fns = {name: {"train": b.train_step, "eval": b.eval_step, "forward": b.forward}
           for name, b in benches.items()}

    first_call_s = {}
    checks = {}
    for name, b in benches.items():
        for k in KINDS:
            first_call_s.setdefault(name, {})[k], out = b.timed(fns[name][k])
            if k == "train":
                checks[name] = {"first_loss": float(out["loss"]) if name == "jax"
                                else float(out["loss"].item())}
            for _ in range(args.warmup - 1):
                b.timed(fns[name][k])
    print("   first call (s): " + "; ".join(
        f"{n} " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()) for n, d in first_call_s.items()),
        flush=True)

    times = {name: {k: [] for k in KINDS} for name in benches}
    last = {}
    for r in range(args.steps):
        order = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
        for k in KINDS:
            for name in order:
                dt, out = benches[name].timed(fns[name][k])
                times[name][k].append(dt)
                if k == "train":
                    last[name] = out
        print(f"   round {r + 1}/{args.steps}: " + "  ".join(
            f"{k} jax {times['jax'][k][-1]:.3f}s torch {times['torch'][k][-1]:.3f}s"
            for k in KINDS), flush=True)

    for name in benches:
        loss = last[name]["loss"]
        checks[name]["last_loss"] = float(loss) if name == "jax" else float(loss.item())
        checks[name]["finite"] = all(math.isfinite(v) for v in checks[name].values()
                                     if isinstance(v, float))
    if not all(c["finite"] for c in checks.values()):
        print(f"   WARNING: non-finite loss: {checks}", flush=True)

    result = {"method": method, "dtype": dtype, "checks": checks,
              "jax": {"compile_s": jb.compile_s, "first_call_s": first_call_s["jax"]},
              "torch": {"first_call_s": first_call_s["torch"]}, "ratio_jax_over_torch": {}}
    flops = {"train": jb.train_flops, "eval": jb.eval_flops, "forward": jb.forward_flops}
    for k in KINDS:
        for name in benches:
            s = summarise(times[name][k], args.batch)
            if flops[k]:
                # XLA's count for the wsolax program, used for both (same network, same work).
                s["gflop_per_s_xla_count"] = flops[k] / s["median_s"] / 1e9
            result[name][k] = s
        result["jax"][k]["xla_flops_per_call"] = flops[k]
        result["ratio_jax_over_torch"][k] = (result["jax"][k]["images_per_s"]
                                             / result["torch"][k]["images_per_s"])
    del jb, tb, benches, fns, last
    gc.collect()
    return result


def print_table(results: list[dict], info: dict, args) -> None:
    print(f"\nResNet50 WSOL, {args.image_size}x{args.image_size}, batch {args.batch}, "
          f"{args.steps} timed rounds (median); device: {info['device']} "
          f"({info.get('gpu_name') or info['processor']}, {info['cpu_count']} CPUs); "
          f"torch {info['torch_version']} eager, {info['torch_memory_format']}")
    head = (f"{'method':<6} {'dtype':<9} {'what':<8} {'jax img/s':>10} {'torch img/s':>12} "
            f"{'jax/torch':>10} {'jax ms':>9} {'torch ms':>9} {'jax GF/s':>9} {'torch GF/s':>10}")
    print(head)
    print("-" * len(head))
    for r in results:
        for k in KINDS:
            j, t = r["jax"][k], r["torch"][k]
            jg = j.get("gflop_per_s_xla_count")
            tg = t.get("gflop_per_s_xla_count")
            print(f"{r['method']:<6} {r['dtype']:<9} {k:<8} {j['images_per_s']:>10.2f} "
                  f"{t['images_per_s']:>12.2f} {r['ratio_jax_over_torch'][k]:>10.2f} "
                  f"{j['median_s'] * 1e3:>9.1f} {t['median_s'] * 1e3:>9.1f} "
                  f"{(f'{jg:.1f}' if jg else '-'):>9} {(f'{tg:.1f}' if tg else '-'):>10}")
    print("\nJAX compile seconds (AOT lower+compile, excluded from throughput):")
    for r in results:
        print(f"  {r['method']:<6} {r['dtype']:<9} " + ", ".join(
            f"{k} {v:.1f}" for k, v in r["jax"]["compile_s"].items()))
    print("losses (first -> last timed step): " + "; ".join(
        f"{r['method']}/{r['dtype']} jax {r['checks']['jax']['first_loss']:.3f}->"
        f"{r['checks']['jax']['last_loss']:.3f} torch {r['checks']['torch']['first_loss']:.3f}->"
        f"{r['checks']['torch']['last_loss']:.3f}" for r in results))


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
    p.add_argument("--torch-memory-format", default="channels_last",
                   choices=["channels_last", "contiguous"])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    args.warmup = max(1, args.warmup)
    if args.steps < 1:
        p.error("--steps must be >= 1")

    kind, jax_device, torch_device = pick_device(args.device)
    import torch

    torch.set_num_threads(os.cpu_count())
    if kind == "gpu":
        torch.backends.cudnn.benchmark = True
        # XLA uses TF32 for float32 convolutions and matmuls on Ampere+ by default; let cuDNN and
        # cuBLAS do the same so float32 compares like for like.
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    info = machine_info(kind, jax_device, torch, args)
    print(json.dumps(info, indent=1), flush=True)

    rng = np.random.default_rng(0)
    s = args.image_size
    images = rng.normal(size=(args.batch, s, s, 3)).astype(np.float32)
    labels = rng.integers(0, args.num_classes, args.batch).astype(np.int32)

    results = []
    for dtype in args.dtypes:
        for method in args.methods:
            results.append(bench_one(method, dtype, args, kind, jax_device, torch, torch_device,
                                     images, labels))
    print_table(results, info, args)
    if args.json:
        report = {"args": vars(args), "machine": info, "results": results,
                  "ratio": "jax images/s / torch images/s (>1: wsolax faster)"}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
