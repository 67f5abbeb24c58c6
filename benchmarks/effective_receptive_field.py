"""Effective receptive field of a config's backbone: how far from a cell its input gradient reaches.

    python benchmarks/effective_receptive_field.py --config configs/synthetic_cam.py:finegrained \
        [--images 64] [--config.key=value ...]

For the centre cell of the last feature map, the mean over test images of |d sum_c f[cell, c] / d x|
(summed over the colour channels) is accumulated per input pixel; reported are the radii around
the cell's centre that hold 50 % and 90 % of that mass, next to the theoretical receptive field
(as Luo et al., NeurIPS'16, describe: the effective field is much smaller). The backbone is the
config's starting point (model.init_from, or the random initialisation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsolax import datasets  # noqa: E402
from wsolax.config import load_config  # noqa: E402
from wsolax.data import pipeline  # noqa: E402
from wsolax import sharding  # noqa: E402
from wsolax.training.loop import build_training, start_from_converted  # noqa: E402
from wsolax.training.state import model_variables  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/synthetic_cam.py:finegrained")
    p.add_argument("--images", type=int, default=64)
    args, overrides = p.parse_known_args()
    cfg = load_config(args.config, overrides)
    mesh = sharding.data_mesh(jax.devices()[:1])
    meta = datasets.load_split(cfg.data, cfg.eval.splits[0])
    model, tx, _, state, _, _ = build_training(cfg, 1024, mesh)
    if cfg.model.init_from:
        state = start_from_converted(cfg, state, tx, mesh)
    variables = model_variables(state)
    size = cfg.data.crop_size
    features = model.apply(variables, jnp.zeros((1, size, size, 3)), train=False)["features"]
    h, w = features.shape[1:3]
    cy, cx = h // 2, w // 2

    def cell_sum(image):
        f = model.apply(variables, image[None], train=False)["features"]
        return f[0, cy, cx].sum()

    grad = jax.jit(jax.vmap(jax.grad(cell_sum)))
    mass = np.zeros((size, size))
    seen = 0
    batches = pipeline.eval_batches(meta, batch_size=16, crop_size=(size, size),
                                    mean=cfg.data.mean, std=cfg.data.std, resize=cfg.data.resize)
    for batch in pipeline.iterate(batches):
        g = np.abs(np.asarray(grad(jnp.asarray(batch["image"])))).sum(-1)
        mass += g[batch["valid"]].sum(0)
        seen += int(batch["valid"].sum())
        if seen >= args.images:
            break
    stride = size / h
    centre = ((cy + 0.5) * stride - 0.5, (cx + 0.5) * stride - 0.5)
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(yy - centre[0], xx - centre[1]).ravel()
    order = np.argsort(radius)
    cumulative = np.cumsum(mass.ravel()[order]) / mass.sum()
    report = {"config": args.config, "init_from": cfg.model.init_from, "images": seen,
              "feature_map": [int(h), int(w)], "stride_px": stride,
              "radius_50%_px": float(radius[order][np.searchsorted(cumulative, 0.5)]),
              "radius_90%_px": float(radius[order][np.searchsorted(cumulative, 0.9)])}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
