"""Two float64 training steps of wsolax against an independent PyTorch run; prints errors as JSON.

Launched in a subprocess by test_train_step_parity.py, because 64-bit JAX must be switched on
before JAX starts. `python tests/train_step_parity_worker.py [<resnet50|vgg16>:<drop|importance>
...]` (default: all four) prints one JSON line: per case and step, the loss, the worst per-tensor
relative errors of the gradients, the parameter updates and the BatchNorm running-statistics
updates, each with the tensor that has it; the names compared; both sides' 10x groups.

Reference side (never looks at the Flax model): random weights with the benchmark's names
(test_resnet's torchvision-named ResNet50, test_wsolevaluation_layout's benchmark-named VGG16),
a training-mode forward written with torch.nn.functional (BatchNorm on batch statistics, running
statistics updated in place with torch's momentum 0.1; ADL as clovaai/wsolevaluation's
wsol/method/adl.py computes it, with its random draw replaced by the forced branch), autograd for
the gradients and `torch.optim.SGD` with the parameter groups the benchmark's main.py builds
(`_set_optimizer`: VGG's `features.*` at lr, everything else at lr x lr_classifier_ratio; ResNet's
`layer4.*` and `fc.*` at lr x ratio, everything else at lr; momentum 0.9, ratio 10 (its config.py
defaults), torch's coupled weight decay on every parameter, nesterov=True). lr and weight decay
are per-experiment flags there; both sides take them from the wsolax config.

wsolax side: the model of `configs/wsolevaluation.py:cub,adl,<arch>` in float64, the same tensors
loaded through the library's converter, the jitted `make_train_step` with `make_optimizer(
cfg.optim)` called once per batch. The gradient the step computed is read from a pass-through
transformation chained in front of the optimizer (it changes nothing the optimizer sees).

Criterion: for each tensor, ||wsolax - reference||_2 / ||reference||_2; for a parameter the
compared quantity is its update (new - old), whose size is set by the learning rate, so a wrong
learning-rate multiplier, momentum rule or weight decay shows at full relative size instead of
being hidden under the unchanged weights (the error of the new weights themselves is reported too).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["JAX_ENABLE_X64"] = "1"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from flax import traverse_util  # noqa: E402

from test_resnet import _block_plan, _torch_state_dict  # noqa: E402
from test_wsolevaluation_layout import VGG_FEATURES, vgg_state_dict  # noqa: E402
from wsolax.config import load_config  # noqa: E402
from wsolax.models import resnet  # noqa: E402
from wsolax.models.wsol_model import init_key, init_variables  # noqa: E402
from wsolax.registry import build_model  # noqa: E402
from wsolax.training.objectives import build_objective  # noqa: E402
from wsolax.training.optim import make_optimizer, param_groups  # noqa: E402
from wsolax.training.state import initial_state  # noqa: E402
from wsolax.training.step import make_train_step  # noqa: E402
from wsolax.weights import convert_torch_state_dict  # noqa: E402
from wsolax.weights.layouts import torch_name_for  # noqa: E402

NUM_CLASSES = 5
BATCH = 2
STEPS = 2  # the first checks one update; the second, momentum carried over
SIZE = {"resnet50": 48, "vgg16": 48}
# The branch each ADL layer is forced to take, as a drop rate: the benchmark selects the drop mask
# when floor(U[0,1) + drop_rate) = 1 and wsolax when U[0,1) < drop_rate; both always at 1.0, never
# at 0.0.
BRANCHES = {"drop": 1.0, "importance": 0.0}
# Run once: compiled without LLVM optimisation (as test_resnet's forwards), most of the cost here.
COMPILE = {"xla_backend_optimization_level": 0}
# ResNet50 ADL positions of the benchmark (wsol/resnet.py _ADL_POSITION): after these blocks.
RESNET_ADL_AFTER = {"layer3": (0,), "layer4": (0, 2)}
# The benchmark's main.py parameter grouping: name substrings, and whether they mark the
# lr x ratio group (ResNet) or the plain-lr group (VGG: everything else gets lr x ratio).
FEATURE_PATTERNS = {"vgg16": (("features.",), False), "resnet50": (("layer4.", "fc."), True)}
# Its config.py defaults (--momentum, --lr_classifier_ratio); main.py fixes nesterov=True.
REFERENCE_MOMENTUM = 0.9
REFERENCE_RATIO = 10.0


# ---------------------------------------------------------------------------------- reference
def _adl(x, drop_rate, gamma):
    """wsol/method/adl.py in training mode, its draw U[0,1) fixed by the forced branch."""
    attention = x.mean(dim=1, keepdim=True)
    importance = torch.sigmoid(attention)
    threshold = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1) * gamma
    drop_mask = (attention < threshold).to(x.dtype)
    selected = float(np.floor(0.5 + drop_rate))  # any U in [0, 1) gives the same at 0.0 / 1.0
    return x * ((1.0 - selected) * importance + selected * drop_mask)


def _resnet_forward(p, stats, x, drop_rate, gamma):
    def bn(h, key):
        return F.batch_norm(h, stats[f"{key}.running_mean"], stats[f"{key}.running_var"],
                            p[f"{key}.weight"], p[f"{key}.bias"], training=True, momentum=0.1,
                            eps=1e-5)

    def conv(h, key, stride=1, padding=0):
        return F.conv2d(h, p[f"{key}.weight"], stride=stride, padding=padding)

    h = F.max_pool2d(F.relu(bn(conv(x, "conv1", 2, 3), "bn1")), 3, 2, 1)
    plan, _ = _block_plan("resnet50", False)
    for name, _, _, stride in plan:
        out = F.relu(bn(conv(h, f"{name}.conv1"), f"{name}.bn1"))
        out = F.relu(bn(conv(out, f"{name}.conv2", stride, 1), f"{name}.bn2"))
        out = bn(conv(out, f"{name}.conv3"), f"{name}.bn3")
        shortcut = h
        if f"{name}.downsample.0.weight" in p:
            shortcut = bn(conv(h, f"{name}.downsample.0", stride), f"{name}.downsample.1")
        h = F.relu(out + shortcut)
        stage, block = name.split(".")
        if int(block) in RESNET_ADL_AFTER.get(stage, ()):
            h = _adl(h, drop_rate, gamma)
    return F.linear(h.mean(dim=(2, 3)), p["fc.weight"], p["fc.bias"])


def _vgg_forward(p, stats, x, drop_rate, gamma):
    del stats
    h, index = x, 0
    for v in VGG_FEATURES[("adl", False)]:
        if v == "M":
            h = F.max_pool2d(h, 2, 2)
        elif v == "A":
            h = _adl(h, drop_rate, gamma)
        else:
            h = F.relu(F.conv2d(h, p[f"features.{index}.weight"], p[f"features.{index}.bias"],
                                padding=1))
            index += 1  # the conv's ReLU slot
        index += 1
    h = F.relu(F.conv2d(h, p["conv6.weight"], p["conv6.bias"], padding=1))
    return F.linear(h.mean(dim=(2, 3)), p["fc.weight"], p["fc.bias"])


def _reference_groups(arch, names):
    patterns, matched_is_new = FEATURE_PATTERNS[arch]
    new = [n for n in names if any(s in n for s in patterns) == matched_is_new]
    return [n for n in names if n not in new], new


def reference_steps(arch, sd, batches, lr, weight_decay, drop_rate, gamma):
    """Per step (loss, gradients, parameters after it, running statistics after it), numpy
    float64, and the names the optimizer gives lr x ratio. `lr` and `weight_decay` are the
    benchmark's per-experiment flags; momentum, the ratio and Nesterov are its defaults."""
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in sd.items()
              if not k.endswith(("running_mean", "running_var"))}
    stats = {k: torch.tensor(v, dtype=torch.float64) for k, v in sd.items()
             if k.endswith(("running_mean", "running_var"))}
    base, new = _reference_groups(arch, list(params))
    opt = torch.optim.SGD([{"params": [params[n] for n in base], "lr": lr},
                           {"params": [params[n] for n in new], "lr": lr * REFERENCE_RATIO}],
                          momentum=REFERENCE_MOMENTUM, weight_decay=weight_decay, nesterov=True)
    forward = _resnet_forward if arch == "resnet50" else _vgg_forward
    out = []
    for x_nhwc, labels in batches:
        x = torch.tensor(x_nhwc.transpose(0, 3, 1, 2).copy())
        logits = forward(params, stats, x, drop_rate, gamma)
        loss = F.cross_entropy(logits, torch.tensor(labels, dtype=torch.int64))
        opt.zero_grad()
        loss.backward()
        grads = {k: v.grad.numpy().copy() for k, v in params.items()}
        opt.step()
        out.append((float(loss.detach()), grads,
                    {k: v.detach().numpy().copy() for k, v in params.items()},
                    {k: v.numpy().copy() for k, v in stats.items()}))
    return out, sorted(new)


# ---------------------------------------------------------------------------------- wsolax side
def _capture_gradient():
    """Pass-through transformation whose state is the last gradient it saw."""
    return optax.GradientTransformation(
        lambda params: {"grad": jax.tree.map(jnp.zeros_like, params)},
        lambda updates, state, params=None: (updates, {"grad": updates}))


def _flat(tree):
    return {"/".join(k): np.asarray(v)
            for k, v in traverse_util.flatten_dict(jax.device_get(tree)).items()}


def wsolax_steps(arch, cfg, sd, batches):
    """Per step the same four (flax names), and the conversion's (flax, torch) name pairs, the
    flax names `make_optimizer` puts in the new-layer group, and the parameter dtypes."""
    model = build_model(cfg)
    # The variables as a fresh wsolax model holds them (a float64 model: float64 parameters and
    # statistics), traced only; the values come from the reference's tensors.
    shapes = jax.eval_shape(lambda k: init_variables(model, k, batches[0][0].shape), init_key(0))
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    torch_name = resnet.torch_name if arch == "resnet50" else torch_name_for(cfg, "wsolevaluation")
    variables, report = convert_torch_state_dict(sd, template, torch_name)
    assert not report.missing and not report.unused and not report.skipped, report.summary()
    assert not report.new_layers, report.new_layers
    tx, _ = make_optimizer(cfg.optim, steps_per_epoch=10, total_steps=100)
    tx = optax.chain(_capture_gradient(), tx)
    state = jax.jit(lambda v: initial_state(v, tx))(variables)
    step = jax.jit(make_train_step(model, tx, build_objective(cfg)), compiler_options=COMPILE)
    out = []
    for x_nhwc, labels in batches:
        batch = {"image": jnp.asarray(x_nhwc), "label": jnp.asarray(labels, jnp.int32)}
        state, metrics = step(state, batch, jax.random.key(3))
        out.append((float(metrics["loss"]), _flat(state.opt_state[0]["grad"]),
                    _flat(state.params), _flat(state.batch_stats)))
    groups = _flat(param_groups(variables["params"], tuple(cfg.optim.new_layer_prefixes)))
    new = sorted(k for k, v in groups.items() if str(v) == "new")
    dtypes = sorted({str(v.dtype) for v in jax.tree.leaves(state.params)})
    return out, report.loaded, new, dtypes


def _torch_layout(value):
    if value.ndim == 4:  # HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    return value.T if value.ndim == 2 else value


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def compare(arch, branch):
    cfg = load_config(f"configs/wsolevaluation.py:cub,adl,{arch}",
                      [f"--config.data.num_classes={NUM_CLASSES}", "--config.model.dtype=float64"])
    cfg.model.methods.adl.drop_rate = BRANCHES[branch]
    if arch == "resnet50":
        sd = _torch_state_dict("resnet50", num_classes=NUM_CLASSES)
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    else:
        sd = vgg_state_dict("adl", False, num_classes=NUM_CLASSES)
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    rng = np.random.default_rng(11)
    batches = [(rng.standard_normal((BATCH, SIZE[arch], SIZE[arch], 3)),
                rng.integers(0, NUM_CLASSES, BATCH)) for _ in range(STEPS)]

    t0 = time.perf_counter()
    ref, ref_new = reference_steps(arch, sd, batches, cfg.optim.lr, cfg.optim.weight_decay,
                                   BRANCHES[branch], cfg.model.methods.adl.gamma)
    t1 = time.perf_counter()
    got, loaded, new, dtypes = wsolax_steps(arch, cfg, sd, batches)
    seconds = {"reference": t1 - t0, "wsolax": time.perf_counter() - t1}

    to_torch = dict(loaded)
    steps = []
    ref_before = got_before = None
    for (ref_loss, ref_grads, ref_params, ref_stats), (loss, grads, params, stats) in zip(ref, got):
        worst = {}

        def record(what, name, err):
            if err >= worst.get(what, (-1.0, ""))[0]:
                worst[what] = (err, name)

        for flax_name, key in loaded:
            collection, leaf = flax_name.split("/", 1)
            old_ref = sd[key] if ref_before is None else ref_before[collection][key]
            old_got = sd[key] if got_before is None else _torch_layout(
                got_before[collection][leaf])
            if collection == "params":
                value = _torch_layout(params[leaf])
                record("grad", key, _rel(_torch_layout(grads[leaf]), ref_grads[key]))
                record("update", key, _rel(value - old_got, ref_params[key] - old_ref))
                record("param", key, _rel(value, ref_params[key]))
            else:
                value = stats[leaf]
                record("stats_update", key, _rel(value - old_got, ref_stats[key] - old_ref))
                record("stats", key, _rel(value, ref_stats[key]))
        steps.append({"loss": loss, "ref_loss": ref_loss,
                      "loss_rel": abs(loss - ref_loss) / abs(ref_loss), "worst": worst})
        ref_before = {"params": ref_params, "batch_stats": ref_stats}
        got_before = {"params": params, "batch_stats": stats}
    return {"steps": steps, "compared": sorted(to_torch.values()),
            "reference_tensors": sorted(sd), "reference_new_group": ref_new,
            "wsolax_new_group": sorted(to_torch[f"params/{n}"] for n in new),
            "param_dtypes": dtypes, "seconds": seconds}


if __name__ == "__main__":
    torch.set_num_threads(1)
    cases = [c.split(":") for c in sys.argv[1:]] or [
        (a, b) for a in SIZE for b in BRANCHES]
    print(json.dumps({f"{a}-{b}": compare(a, b) for a, b in cases}))
