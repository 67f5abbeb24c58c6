"""Has a trained run's new head collapsed? Dead units, input-independent outputs, the loss curve.

    python benchmarks/head_collapse_probe.py --config configs/synthetic_acol.py:finegrained \
        --workdir runs/benchmark10/acol/seed0 [--split test] [--config.key=value ...]

For the latest checkpoint in --workdir, over every image of --split (evaluation mode, each image's
CAM requested for its ground-truth class), for each convolution of the layers a method adds (module
paths under `head` or named `*_insert`):

* `never_positive_channels_%`: output channels whose pre-activation is <= 0 at every position of
  every image. Where a ReLU follows (ACoL's conv1/conv2, SPG's branch convs) these units are dead:
  they pass no signal and, with a zero ReLU gradient everywhere, receive no gradient either.
* `between_image_std`: the standard deviation over images of each channel's spatial mean, averaged
  over the channels -- 0 when the layer's output no longer depends on the image.

For the logits: their standard deviation over images (mean over classes) and how many distinct
classes the model predicts. From the run's `metrics.jsonl`: the logged training loss terms and the
gradient norm, step by step. A classifier whose logits are the same for every image predicts one
class and its cross-entropy sits at ln(K) (2.303 for 10 classes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsolax import datasets, sharding  # noqa: E402
from wsolax.checkpoint import restore_model  # noqa: E402
from wsolax.config import load_config  # noqa: E402
from wsolax.data import pipeline  # noqa: E402


def is_new(path: tuple[str, ...]) -> bool:
    return path[0] == "head" or any(p.endswith("_insert") for p in path)


def training_curve(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = ("step", "accuracy", "grad_norm")
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()
             if k in keep or k.startswith("loss")} for r in rows if r.get("split") == "train"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--json", default=None, help="also write the report here")
    args, overrides = p.parse_known_args()
    cfg = load_config(args.config, overrides)
    mesh = sharding.data_mesh()
    model, variables, step = restore_model(cfg, args.workdir, mesh)
    size = (cfg.data.crop_size, cfg.data.crop_size)

    def forward(v, x, labels):
        out, state = model.apply(v, x, train=False, cam_classes=labels[:, None],
                                 capture_intermediates=lambda m, _: isinstance(m, nn.Conv),
                                 mutable=["intermediates"])
        convs = {k[:-1]: o[0] for k, o in
                 traverse_util.flatten_dict(state["intermediates"]).items()
                 if k[-1] == "__call__" and is_new(k[:-1])}
        # per image: each channel's spatial mean and its maximum over the positions
        stats = {k: (o.mean(axis=tuple(range(1, o.ndim - 1))),
                     o.max(axis=tuple(range(1, o.ndim - 1)))) for k, o in convs.items()}
        return out["logits"], stats

    forward = jax.jit(forward)
    meta = datasets.load_split(cfg.data, args.split)
    batches = pipeline.eval_batches(meta, batch_size=cfg.eval.batch_size, crop_size=size,
                                    mean=cfg.data.mean, std=cfg.data.std, resize=cfg.data.resize)
    logits, means, maxima = [], {}, {}
    for batch in pipeline.iterate(batches, num_threads=cfg.data.num_threads):
        b = sharding.put_batch({"image": batch["image"], "label": batch["label"]}, mesh)
        lg, stats = jax.device_get(forward(variables, b["image"], b["label"]))
        valid = np.asarray(batch["valid"], bool)
        logits.append(np.asarray(lg)[valid])
        for k, (mean, mx) in stats.items():
            # a branch run once per requested class stacks (B * n, ...) rows; n = 1 here
            means.setdefault(k, []).append(np.asarray(mean)[:len(valid)][valid])
            maxima.setdefault(k, []).append(np.asarray(mx)[:len(valid)][valid])
    logits = np.concatenate(logits)
    layers = {}
    for k in sorted(means):
        mean, mx = np.concatenate(means[k]), np.concatenate(maxima[k])
        layers["/".join(k)] = {
            "channels": int(mean.shape[-1]),
            "never_positive_channels_%": round(100 * float(np.mean(mx.max(axis=0) <= 0)), 1),
            "between_image_std": float(mean.std(axis=0).mean()),
        }
    report = {
        "workdir": args.workdir, "step": step, "split": args.split, "images": int(len(logits)),
        "logits_between_image_std": float(logits.std(axis=0).mean()),
        "distinct_predicted_classes": int(len(np.unique(logits.argmax(-1)))),
        "ln_num_classes": round(math.log(logits.shape[-1]), 4),
        "new_layers": layers,
        "training": training_curve(Path(args.workdir)),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
