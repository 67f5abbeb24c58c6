"""Where the first steps' gradient goes in a Where to Look run: the largest per-parameter gradient
norms of its head, the backbone's total, and CAAM's deltas / SSAM's alpha, step by step.

    python benchmarks/wtl_gradient_probe.py [--config configs/synthetic_wtl.py:finegrained]
        [--steps 3] [--config.key=value ...]

Trains `--steps` real steps of the config (its data, pretrained backbone, optimiser and rates) and
before each prints what the step's gradient is made of. It answers whether a divergence comes from
the fusion loss or from the cross-entropies and which parameters carry it (docs/benchmark.md,
"After the readings").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsolax import datasets, sharding  # noqa: E402
from wsolax.config import load_config  # noqa: E402
from wsolax.data import pipeline  # noqa: E402
from wsolax.training import loop  # noqa: E402
from wsolax.training.objectives import build_objective  # noqa: E402
from wsolax.training.state import model_variables  # noqa: E402
from wsolax.training.step import make_train_step  # noqa: E402


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/synthetic_wtl.py:finegrained")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=6)
    args, overrides = p.parse_known_args()
    cfg = load_config(args.config, overrides)
    mesh = sharding.data_mesh()
    split = datasets.load_split(cfg.data, cfg.data.train_split, verify_images=False)
    model, tx, _, state, steps_per_epoch, _ = loop.build_training(cfg, len(split.image_ids), mesh)
    if cfg.model.init_from:
        state = loop.start_from_converted(cfg, state, tx, mesh)
    objective = build_objective(cfg, steps_per_epoch)

    @jax.jit
    def gradients(state, batch, key):
        def loss_of(params):
            return objective(model, model_variables(state.replace(params=params)), batch, key,
                             state.step)[0]
        return jax.grad(loss_of)(state.params)

    step = jax.jit(make_train_step(model, tx, objective))
    run_key = jax.random.key(cfg.seed)
    batches = pipeline.iterate(loop.training_batches(cfg, split), start_step=0,
                               num_threads=cfg.data.num_threads)
    for s in range(args.steps):
        b = next(batches)
        batch = sharding.put_batch({"image": b["image"], "label": b["label"]}, mesh)
        key = jax.random.fold_in(run_key, s)  # the key the train step folds in at this step
        grads = gradients(state, batch, key)
        head = jax.tree_util.tree_flatten_with_path(grads["head"])[0]
        largest = sorted(((_norm(v), "/".join(str(getattr(k, "key", k)) for k in path))
                          for path, v in head), reverse=True)[:args.top]
        params = state.params["head"]
        scalars = {name: float(params[m][n]) for name, (m, n) in {
            "delta_x": ("caam", "delta_x"), "delta_x_tilde": ("caam", "delta_x_tilde"),
            "alpha_x": ("ssam_x", "alpha"), "alpha_x_tilde": ("ssam_x_tilde", "alpha")}.items()
            if m in params}
        print(f"step {s + 1}: backbone gradient norm {_norm(grads['backbone']):.3g}; head: "
              + ", ".join(f"{name} {value:.3g}" for value, name in largest)
              + f"; before the step {scalars}")
        state, metrics = step(state, batch, run_key)
        print("   " + ", ".join(f"{k} {float(v):.4g}" for k, v in sorted(metrics.items())
                                if k.startswith(("loss", "grad_norm"))))


if __name__ == "__main__":
    main()
