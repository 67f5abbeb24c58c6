"""Optimizer from config: SGD + Nesterov momentum, weight decay, schedules, per-group learning rates.

Parameters whose path starts with one of `optim.new_layer_prefixes` (the layers WSOL adds on top of
an ImageNet backbone) learn `new_layer_lr_mult` times faster (x10 in the CVPR'20 benchmark's code,
its `lr_classifier_ratio`; the method papers give no learning rates, see docs/paper_configs.md).
A prefix may hold `*` (any characters, `/` included): "backbone/*_insert" is every layer inserted
after a backbone stage. The rule the defaults write (docs/methods.md, "Which layers are new"): a
parameter is new iff the pretrained backbone does not have it.

Step decay (`optim.decay_rule`): "every" multiplies the rate by `decay_factor` after every
`decay_epochs` epochs; "wsolevaluation" as that benchmark's main.py, which calls
`adjust_learning_rate(epoch + 1)` before training each epoch and decays
`if epoch != 0 and epoch % lr_decay_frequency == 0`: before the 1-based epoch e with
e % decay_epochs == 0, i.e. after e - 1 epochs, one epoch earlier than "every".
Weight decay is added to the gradient before momentum, matching torch.optim.SGD, which that code
uses. `optim.clip_grad_norm` > 0 first rescales the whole gradient to at most that global norm
(off by default: no method paper clips; `readings=v1` clipped Where to Look at 5, see
configs/_readings.py and docs/methods.md's reading W2).
"""

from __future__ import annotations

import fnmatch

import jax
import jax.numpy as jnp
import ml_collections
import optax


def make_schedule(optim_cfg: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int,
                  scale: float = 1.0) -> optax.Schedule:
    schedule = _schedule(optim_cfg, steps_per_epoch, total_steps, scale)
    # optax computes from the int32 step count in float32; a float count gives the default float
    # dtype instead: float64 with 64-bit JAX (a float64 run's learning rate is then exactly the
    # config's, not rounded to float32: 0.01 -> 0.009999999776), float32 otherwise (unchanged).
    return lambda count: schedule(jnp.asarray(count, dtype=float))


def _schedule(optim_cfg, steps_per_epoch, total_steps, scale):
    base = optim_cfg.lr * scale
    warmup = int(round(optim_cfg.warmup_epochs * steps_per_epoch))
    if optim_cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(base, max(total_steps - warmup, 1))
    elif optim_cfg.schedule == "step":
        every = optim_cfg.decay_epochs * steps_per_epoch
        main = optax.exponential_decay(base, transition_steps=every,
                                       decay_rate=optim_cfg.decay_factor, staircase=True)
        if optim_cfg.decay_rule == "wsolevaluation":
            # The same staircase, one epoch earlier (with decay_epochs = 1 main.py decays before
            # every epoch, the first included, and so does this).
            shifted = main
            main = lambda count: shifted(count + steps_per_epoch)  # noqa: E731
    else:
        main = optax.constant_schedule(base)
    if warmup == 0:
        return main
    ramp = optax.linear_schedule(0.0, base, warmup)
    return optax.join_schedules([ramp, main], [warmup])


def param_groups(params, prefixes: tuple[str, ...]):
    """'new' for parameters under one of `prefixes` (slash-joined path; `*` matches any
    characters), else 'backbone'."""
    patterns = tuple(p + "*" for p in prefixes)

    def label(path, _):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        return "new" if any(fnmatch.fnmatchcase(name, p) for p in patterns) else "backbone"
    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(optim_cfg: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Returns the transformation and the base (backbone) schedule, for logging."""
    def sgd(scale):
        schedule = make_schedule(optim_cfg, steps_per_epoch, total_steps, scale)
        return optax.chain(
            optax.add_decayed_weights(optim_cfg.weight_decay),
            optax.sgd(schedule, momentum=optim_cfg.momentum or None, nesterov=optim_cfg.nesterov),
        )
    tx = optax.multi_transform(
        {"backbone": sgd(1.0), "new": sgd(optim_cfg.new_layer_lr_mult)},
        lambda params: param_groups(params, tuple(optim_cfg.new_layer_prefixes)),
    )
    if optim_cfg.clip_grad_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(optim_cfg.clip_grad_norm), tx)
    return tx, make_schedule(optim_cfg, steps_per_epoch, total_steps)
