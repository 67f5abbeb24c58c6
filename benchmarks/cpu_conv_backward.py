"""Where the float32 ResNet50 train step's time goes on XLA:CPU, and whether other formulations of
the convolutions' backward pass close the gap to PyTorch (issue: the CPU float32 gap).

    python benchmarks/cpu_conv_backward.py [--batch 16] [--image-size 224] [--repeats 3]
        [--backbone resnet50] [--variants xla adopted dot1x1 patches_dw dot1x1+patches_dw]
        [--skip-ops] [--json out.json]
    python benchmarks/cpu_conv_backward.py --grad-check [--batch 16] [--image-size 224]
        [--variants xla adopted] [--json out.json]

1. Per-op profile: every distinct convolution of ResNet50 (shapes captured from the model itself
   with flax's method interceptor, with their counts) timed alone, jitted: the forward, the input
   gradient (dx) and the filter gradient (dw), as jax.grad lowers them. Summed with the counts,
   that says how much of the step is convolution and which of the three parts is slow.
2. The same ops in other formulations, each checked against XLA's own result first:
   - `dot1x1`: a 1x1 convolution (most of ResNet50's) as a matrix product, `einsum` over channels
     (its gradients are matrix products too);
   - `patches_dw`: a kxk convolution's filter gradient as image patches times the output gradient
     (`conv_general_dilated_patches` + `einsum`), the forward and dx left to XLA (custom VJP).
   - `adopted`: the library's own `wsolax.models.conv.conv_general_dilated` (1x1 convolutions as
     a strided slice and `lax.dot_general`), which ConvBN uses on CPU (`conv_1x1="auto"`).
3. The whole train step (wsolax's own `make_train_step`, ResNet50 with a CAM head (no inserted
   layers), SGD) with each variant, interleaved over `--repeats` rounds; gradients compared with
   the XLA variant's (relative norm per leaf). `xla` forces ConvBN's `conv_1x1="conv"` (flax's
   default `lax.conv_general_dilated` everywhere); `adopted` is the model as the library builds
   it (nothing swapped); the other variants swap their formulation in for
   `lax.conv_general_dilated` inside flax's Conv.
4. `--grad-check`: is a float32 gradient difference between formulations rounding or an error?
   With 64-bit JAX, the same parameters and batch: the gradient in float64 (model dtype float64)
   with each variant (they must agree to ~1e-12), then each variant's float32 gradient against
   the float64 one, per leaf. If a formulation's float32 error is of the size of XLA's own
   float32 error on every leaf, the difference between them is rounding.

Other knobs (XLA flags, batch sizes) are separate invocations: `XLA_FLAGS=... python ...` and
`--batch`. Measure on a quiet machine: the load average is recorded (before, and around each
timed step).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import platform
import statistics
import sys
import time
import types

if "--grad-check" in sys.argv:  # float64 needs 64-bit JAX, switched on before JAX starts
    os.environ["JAX_ENABLE_X64"] = "1"

import flax.linen as nn
import flax.linen.linear as flax_linear
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from wsolax.config import load_config
from wsolax.models import conv as wsolax_conv
from wsolax.models import resnet as resnet_module
from wsolax.models.layers import ConvBN
from wsolax.models.wsol_model import init_key, init_variables
from wsolax.registry import build_model
from wsolax.training.optim import make_optimizer
from wsolax.training.state import init_state
from wsolax.training.step import classification_objective, make_train_step

NHWC = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, w, strides, padding):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC,
                                    precision=lax.Precision.DEFAULT)


def _dot_1x1(x, w, strides, padding):
    """A 1x1, unpadded convolution: subsample by the stride, then a product over channels."""
    assert w.shape[:2] == (1, 1) and all(p == (0, 0) for p in padding)
    return jnp.einsum("nhwc,co->nhwo", x[:, ::strides[0], ::strides[1], :], w[0, 0])


def _patches_dw(x, g, kernel_hw, strides, padding):
    """dL/dw of a kxk convolution: patches of x (flattened in (c, kh, kw) order) times dy."""
    patches = lax.conv_general_dilated_patches(x, kernel_hw, strides, padding,
                                               dimension_numbers=NHWC)
    c = x.shape[-1]
    dw = jnp.einsum("nhwp,nhwo->po", patches, g)
    return dw.reshape(c, *kernel_hw, g.shape[-1]).transpose(1, 2, 0, 3)


def _make_patches_conv(strides, padding):
    @jax.custom_vjp
    def conv(x, w):
        return _xla_conv(x, w, strides, padding)

    def fwd(x, w):
        return conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        dx = jax.vjp(lambda x_: _xla_conv(x_, w, strides, padding), x)[1](g)[0]
        return dx, _patches_dw(x, g, w.shape[:2], strides, padding)

    conv.defvjp(fwd, bwd)
    return conv


def formulation(variant: str):
    """conv(x, w, strides, padding) for `variant` (plain NHWC convolutions, no dilation/groups)."""
    if variant == "adopted":
        return lambda x, w, strides, padding: wsolax_conv.conv_general_dilated(
            x, w, strides, padding, dimension_numbers=NHWC, precision=lax.Precision.DEFAULT)
    use_dot = "dot1x1" in variant
    use_patches = "patches_dw" in variant

    def conv(x, w, strides, padding):
        strides, padding = tuple(strides), tuple(tuple(p) for p in padding)
        if use_dot and w.shape[:2] == (1, 1) and all(p == (0, 0) for p in padding):
            return _dot_1x1(x, w, strides, padding)
        if use_patches and w.shape[:2] != (1, 1):
            return _make_patches_conv(strides, padding)(x, w)
        return _xla_conv(x, w, strides, padding)

    return conv


def _as_lax_conv(conv):
    """A stand-in for lax.conv_general_dilated with flax Conv's call signature (NHWC only)."""

    def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                             rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                             precision=None, **_):
        plain = (feature_group_count == 1 and not any(d != 1 for d in (lhs_dilation or ()))
                 and not any(d != 1 for d in (rhs_dilation or ())) and not isinstance(padding, str))
        if not plain:
            return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                            rhs_dilation, dimension_numbers, feature_group_count,
                                            precision=precision)
        return conv(lhs, rhs, window_strides, padding)

    return conv_general_dilated


class _Patched:
    """`variant`'s convolutions while the model is traced.

    "adopted": nothing swapped (the library's ConvBN, `conv_1x1="auto"`). Every other variant
    makes ResNet's ConvBN use flax's default `lax.conv_general_dilated` (`conv_1x1="conv"`);
    beyond "xla", flax's Conv then calls `lax.conv_general_dilated` through its module's `lax`,
    and that name is swapped for the variant's formulation.
    """

    def __init__(self, variant):
        self.variant = variant

    def __enter__(self):
        self.saved = flax_linear.lax, resnet_module.ConvBN
        if self.variant == "adopted":
            return
        resnet_module.ConvBN = functools.partial(ConvBN, conv_1x1="conv")
        if self.variant != "xla":
            fake = types.SimpleNamespace(**{k: getattr(lax, k) for k in dir(lax)
                                            if not k.startswith("__")})
            fake.conv_general_dilated = _as_lax_conv(formulation(self.variant))
            flax_linear.lax = fake

    def __exit__(self, *exc):
        flax_linear.lax, resnet_module.ConvBN = self.saved


def _resnet50(image_size: int, backbone: str = "resnet50", dtype: str = "float32"):
    """ResNet50 (torchvision's; `se_resnet50` for the ADL paper's) with the CAM head and
    layer4 at stride 1 (the WSOL variant), no inserted layers, 200 classes (CUB)."""
    cfg = load_config("configs/cub_adl_resnet50.py", [
        f"--config.model.backbone={backbone}", "--config.model.inserts=()",
        f"--config.model.dtype={dtype}", f"--config.data.crop_size={image_size}",
        f"--config.data.resize_size={image_size}", "--config.data.num_classes=200"])
    return cfg, build_model(cfg)


def conv_shapes(model, batch: int, image_size: int) -> collections.Counter:
    """(input shape, kernel shape, strides, padding) -> count, for every Conv the model calls."""
    found = collections.Counter()

    def record(next_fun, args, kwargs, context):
        module = context.module
        if isinstance(module, nn.Conv) and context.method_name == "__call__":
            x = args[0]
            k = tuple(module.kernel_size)
            pad = module.padding
            pad = tuple(tuple(p) for p in pad) if not isinstance(pad, str) else pad
            strides = module.strides or 1
            strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
            if isinstance(pad, str):  # 'SAME' / 'VALID' as explicit (low, high) pairs
                pad = tuple(tuple(int(v) for v in p)
                            for p in lax.padtype_to_pads(x.shape[1:3], k, strides, pad))
            found[(tuple(x.shape), k + (x.shape[-1], module.features), strides, pad)] += 1
        return next_fun(*args, **kwargs)

    x = jnp.zeros((batch, image_size, image_size, 3))
    with nn.intercept_methods(record):
        jax.eval_shape(lambda k: model.init({"params": k, "dropout": k}, x, train=False),
                       init_key(0))
    return found


def _flops(shape, count) -> int:
    """Multiply-adds of one forward of a captured convolution, times its count."""
    (n, h, w, _), (kh, kw, cin, cout), strides, _ = shape
    return count * n * -(-h // strides[0]) * -(-w // strides[1]) * kh * kw * cin * cout


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile_ops(shapes, variants, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for (x_shape, (kh, kw, cin, cout), strides, padding), count in sorted(shapes.items()):
        x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
        w = jnp.asarray(rng.standard_normal((kh, kw, cin, cout)) / np.sqrt(kh * kw * cin),
                        jnp.float32)
        row = {"input": list(x_shape), "kernel": [kh, kw, cin, cout], "strides": list(strides),
               "padding": [list(p) for p in padding], "count": count}
        reference, g = None, None
        for variant in variants:
            conv = formulation(variant)
            fwd = jax.jit(lambda x, w: conv(x, w, strides, padding))
            y = fwd(x, w)
            if g is None:  # one output gradient per shape, the same for every formulation
                g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
            dx = jax.jit(lambda x, w, g: jax.vjp(lambda x_: conv(x_, w, strides, padding), x)[1](g)[0])
            dw = jax.jit(lambda x, w, g: jax.vjp(lambda w_: conv(x, w_, strides, padding), w)[1](g)[0])
            outs = (y, dx(x, w, g), dw(x, w, g))
            if reference is None:
                reference = outs
            else:  # every formulation computes the same three arrays (float32 rounding apart)
                for name, a, b in zip(("fwd", "dx", "dw"), outs, reference):
                    err = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
                    row[f"{variant}_{name}_rel_err"] = err
                    assert err < 1e-4, (variant, name, err)
            row[variant] = {name: _median_time(f, *a, repeats=repeats) for name, f, a in (
                ("fwd", fwd, (x, w)), ("dx", dx, (x, w, g)), ("dw", dw, (x, w, g)))}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("input", "kernel", "strides", "count")}),
              {v: {k: round(t * 1e3, 1) for k, t in row[v].items()} for v in variants}, flush=True)
    return rows


def time_steps(cfg, model, variants, batch: int, image_size: int, repeats: int) -> dict:
    tx, _ = make_optimizer(cfg.optim, 100, 1000)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((batch, image_size, image_size, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, cfg.data.num_classes, batch), jnp.int32)
    batch_dict = {"image": images, "label": labels}
    key = jax.random.key(0)
    state0 = jax.jit(lambda k: init_state(model, tx, k, (1, image_size, image_size, 3)))(init_key(0))
    steps, grads = {}, {}
    for variant in variants:
        with _Patched(variant):
            step = jax.jit(make_train_step(model, tx, classification_objective))
            compiled = step.lower(state0, batch_dict, key).compile()
            loss_grad = jax.jit(jax.grad(lambda p, s, d, k: _loss(model, p, s, d, k)))
            grads[variant] = jax.device_get(
                loss_grad(state0.params, state0.batch_stats, batch_dict, key))
        steps[variant] = compiled
    times = {v: [] for v in variants}
    loads = []
    for _ in range(repeats):
        for variant in variants:
            state = jax.tree.map(jnp.copy, state0)
            jax.block_until_ready(steps[variant](state, batch_dict, key))  # warm
            state = jax.tree.map(jnp.copy, state0)
            start = time.perf_counter()
            jax.block_until_ready(steps[variant](state, batch_dict, key))
            times[variant].append(time.perf_counter() - start)
            loads.append(os.getloadavg()[0])
            print(variant, round(times[variant][-1], 2), "s, load", loads[-1], flush=True)
    base = grads[variants[0]]
    worst = {}
    for variant in variants[1:]:
        errs = jax.tree.map(lambda a, b: float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)),
                            grads[variant], base)
        worst[variant] = max(jax.tree.leaves(errs))
    return {"seconds_per_step": {v: statistics.median(t) for v, t in times.items()},
            "all_seconds": times, "load_average_1min_after_each": loads,
            "speedup_vs_first": {v: statistics.median(times[variants[0]]) / statistics.median(t)
                                 for v, t in times.items()},
            "images_per_s": {v: batch / statistics.median(t) for v, t in times.items()},
            "max_leaf_grad_rel_err_vs_first": worst}


def _loss(model, params, batch_stats, batch, key):
    out, _ = model.apply({"params": params, "batch_stats": batch_stats}, batch["image"],
                         train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    logp = jax.nn.log_softmax(out["logits"])
    return -jnp.mean(jnp.take_along_axis(logp, batch["label"][:, None], axis=-1))


def _leaves(tree) -> dict[str, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): np.asarray(v) for path, v in flat}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b|| in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def grad_check(backbone: str, variants, batch: int, image_size: int) -> dict:
    """Per-leaf gradient errors of each variant in float32 and float64 against the float64
    gradient of the first variant (XLA's convolutions): rounding or an error?"""
    assert jax.config.jax_enable_x64, "--grad-check runs with 64-bit JAX"
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, image_size, image_size, 3)).astype(np.float32)
    labels = jnp.asarray(rng.integers(0, 200, batch), jnp.int32)
    _, model32 = _resnet50(image_size, backbone, "float32")
    _, model64 = _resnet50(image_size, backbone, "float64")
    # one point for every run: the float32 initial variables, exactly widened for float64
    variables = jax.jit(lambda k: init_variables(model32, k, (1, image_size, image_size, 3)))(
        init_key(0))
    key = jax.random.key(0)
    grads, losses, seconds, f64_in_f32 = {}, {}, {}, {}
    for dtype, model in (("float32", model32), ("float64", model64)):
        params, stats = jax.tree.map(lambda v: jnp.asarray(v, dtype),
                                     (variables["params"], variables["batch_stats"]))
        data = {"image": jnp.asarray(images, dtype), "label": labels}
        for variant in variants:
            with _Patched(variant):  # a fresh function per variant: traced under its patch
                fn = jax.value_and_grad(lambda p, s, d, k: _loss(model, p, s, d, k))
                if dtype == "float32":  # a float32 run must not compute anything in float64
                    f64_in_f32[variant] = str(jax.make_jaxpr(fn)(params, stats, data, key)).count(
                        "f64[")
                start = time.perf_counter()  # compile + run
                loss, g = jax.device_get(jax.jit(fn)(params, stats, data, key))
                seconds[f"{dtype}/{variant}"] = time.perf_counter() - start
            assert {v.dtype for v in jax.tree.leaves(g)} == {np.dtype(dtype)}
            grads[dtype, variant] = _leaves(g)
            losses[f"{dtype}/{variant}"] = float(loss)
            print(dtype, variant, "loss", float(loss), "seconds", round(seconds[f"{dtype}/{variant}"], 1),
                  flush=True)
    ref = grads["float64", variants[0]]
    leaves = {}
    for name, g64 in ref.items():
        row = {"shape": list(g64.shape), "norm_float64": float(np.linalg.norm(g64))}
        for variant in variants:
            row[f"float32/{variant}_vs_float64"] = _rel(grads["float32", variant][name], g64)
            if variant != variants[0]:
                row[f"float64/{variant}_vs_float64/{variants[0]}"] = _rel(
                    grads["float64", variant][name], g64)
                row[f"float32/{variant}_vs_float32/{variants[0]}"] = _rel(
                    grads["float32", variant][name], grads["float32", variants[0]][name])
        leaves[name] = row

    def worst(column):
        name = max(leaves, key=lambda n: leaves[n][column])
        return {"leaf": name, "value": leaves[name][column]}

    base = f"float32/{variants[0]}_vs_float64"
    summary = {"float32_in_float64_ops": f64_in_f32, "losses": losses, "seconds": seconds,
               base: worst(base)}
    for variant in variants[1:]:
        col32 = f"float32/{variant}_vs_float64"
        ratios = {n: r[col32] / max(r[base], 1e-300) for n, r in leaves.items()}
        top = sorted(leaves, key=lambda n: -leaves[n][f"float32/{variant}_vs_float32/{variants[0]}"])
        summary[variant] = {
            "float64_vs_float64_" + variants[0]: worst(f"float64/{variant}_vs_float64/{variants[0]}"),
            "float32_vs_float64": worst(col32),
            "float32_vs_float32_" + variants[0]: worst(f"float32/{variant}_vs_float32/{variants[0]}"),
            # per leaf: this formulation's float32 error over XLA's own float32 error
            "error_ratio_to_xla_max": {"leaf": max(ratios, key=ratios.get),
                                       "value": max(ratios.values())},
            "error_ratio_to_xla_median": statistics.median(ratios.values()),
            "largest_float32_differences": [{"leaf": n, **leaves[n]} for n in top[:5]]}
    return {"summary": summary, "leaves": leaves}


def _machine() -> str:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores, {model}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backbone", default="resnet50", choices=["resnet50", "se_resnet50"])
    p.add_argument("--variants", nargs="+", default=None,
                   help="the first is the reference (default: xla adopted dot1x1 patches_dw "
                        "dot1x1+patches_dw; with --grad-check: xla adopted)")
    p.add_argument("--skip-ops", action="store_true", help="only the whole train step")
    p.add_argument("--skip-steps", action="store_true", help="only the per-op profile")
    p.add_argument("--ops-top", type=int, default=0,
                   help="profile only the K convolutions with the most FLOPs per step (0: all)")
    p.add_argument("--grad-check", action="store_true",
                   help="float32 and float64 gradients of each variant vs the float64 XLA one")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    variants = args.variants or (["xla", "adopted"] if args.grad_check else [
        "xla", "adopted", "dot1x1", "patches_dw", "dot1x1+patches_dw"])
    record = {"backbone": args.backbone, "batch": args.batch, "image_size": args.image_size,
              "repeats": args.repeats, "variants": variants,
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_average": os.getloadavg(),
              "machine": _machine(), "jax": jax.__version__, "backend": jax.default_backend()}
    if args.grad_check:
        record["grad_check"] = grad_check(args.backbone, variants, args.batch, args.image_size)
        print(json.dumps(record["grad_check"]["summary"], indent=1))
    else:
        cfg, model = _resnet50(args.image_size, args.backbone)
        if not args.skip_ops:
            shapes = conv_shapes(model, args.batch, args.image_size)
            if args.ops_top:
                shapes = collections.Counter(dict(sorted(
                    shapes.items(), key=lambda kv: -_flops(*kv))[:args.ops_top]))
            rows = profile_ops(shapes, variants, args.repeats)
            record["ops"] = rows
            record["conv_seconds_per_step"] = {
                v: {part: sum(r[v][part] * r["count"] for r in rows) for part in ("fwd", "dx", "dw")}
                for v in variants}
            print("convolution seconds per step (count-weighted):",
                  json.dumps(record["conv_seconds_per_step"], indent=1))
        if not args.skip_steps:
            record["train_step"] = time_steps(cfg, model, variants, args.batch, args.image_size,
                                              args.repeats)
            print(json.dumps(record["train_step"], indent=1))
    record["load_average_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
