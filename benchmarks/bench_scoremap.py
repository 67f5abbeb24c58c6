"""Benchmark: the exact (reference, float64, host) score-map path vs the on-device float32 one.

Two parts, on CUB-sized synthetic data (random float32 14x14 CAMs -> 224x224 score maps, 1-3 GT
boxes per image in random original sizes, blob-shaped masks with ignored pixels):

1. cost per image of the exact path (`reference_scoremaps`: float64 cast, one cv2 INTER_CUBIC call
   per batch, float64 min-max), measured A/B interleaved with the literal per-map reference loop
   and with the float32 JAX path run on this machine's CPU (on an accelerator that path costs
   the device time instead, and the maps' transfer);
2. what the float32 path changes: 8-bit maps that differ, the largest per-threshold difference in
   correct counts, and MaxBoxAcc / MaxBoxAccV2 / PxAP both ways, on random CAMs and on constant
   CAMs (exact: all-zero maps; float32: resize ripples stretched to [0, 1]).

    python benchmarks/bench_scoremap.py                 # 5,794 images
    python benchmarks/bench_scoremap.py --num-images 500 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time

import jax.numpy as jnp
import numpy as np

from bench_evaluator import reference_loop as literal_reference  # same folder

from wsolax.evaluation import WSOLEvaluator
from wsolax.evaluation.reference_scoremap import reference_scoremaps
from wsolax.localization.device_scoremap import normalize_scoremaps, resize_cams
from wsolax.evaluation.synthetic import random_annotations

INPUT = (224, 224)
GRID = (14, 14)
BATCH = 64


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=5794)
    parser.add_argument("--num-constant", type=int, default=500,
                        help="images with constant CAMs in part 2")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timing rounds (the machine is shared: medians)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=str, default=None)
    return parser.parse_args()


def device_float32(cams: np.ndarray) -> np.ndarray:
    return np.asarray(normalize_scoremaps(resize_cams(jnp.asarray(cams), INPUT)))


def time_per_image(cams: np.ndarray, rounds: int) -> dict[str, float]:
    """Median ms per image of each path; the paths alternate within every round (A/B)."""
    paths = {"exact (reference_scoremaps)": reference_scoremaps_224,
             "literal per-map reference loop": literal_reference,
             "float32 JAX path on this CPU": device_float32}
    device_float32(cams[:BATCH])  # compile outside the timing
    times = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            start = time.perf_counter()
            for s in range(0, len(cams), BATCH):
                fn(cams[s:s + BATCH])
            times[name].append(1e3 * (time.perf_counter() - start) / len(cams))
    return {name: float(np.median(t)) for name, t in times.items()}


def reference_scoremaps_224(cams: np.ndarray) -> np.ndarray:
    return reference_scoremaps(cams, INPUT)


def masks_for(ids, seed: int) -> dict[str, np.ndarray]:
    """A blob mask per image (1 fg, 0 bg, 255 ignored), from a coarse random map."""
    out = {}
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng((seed, i, 1))
        blob = reference_scoremaps(rng.random((1, 4, 4), dtype=np.float32), INPUT)[0] > 0.6
        mask = blob.astype(np.uint8)
        mask[rng.random(INPUT) < 0.02] = 255
        out[image_id] = mask
    return out


def evaluate(cams, ids, annotations, masks, prepare) -> tuple[dict, np.ndarray]:
    """Metrics of one score-map path, and the uint8 maps (to count differing maps)."""
    gt_boxes, sizes = annotations
    quantised = []
    with WSOLEvaluator(gt_boxes, sizes, input_size=INPUT, mask_loader=masks.get) as ev:
        for s in range(0, len(cams), BATCH):
            maps = prepare(cams[s:s + BATCH])
            quantised.append((maps * 255).astype(np.uint8))
            ev.accumulate(ids[s:s + BATCH], maps, np.zeros(len(maps), int))
        return ev.compute(), np.concatenate(quantised)


def compare(name, cams, seed) -> dict:
    ids = [f"{name}{i:05d}" for i in range(len(cams))]
    annotations = random_annotations(np.random.default_rng((seed, 7)), ids)
    masks = masks_for(ids, seed)
    exact, q_exact = evaluate(cams, ids, annotations, masks, reference_scoremaps_224)
    f32, q_f32 = evaluate(cams, ids, annotations, masks, device_float32)
    num = len(cams)
    count_diffs = [np.abs(exact[k] - f32[k]).max() * num / 100 for k in exact
                   if k.startswith("box_acc_v") and k.endswith(("@30", "@50", "@70"))]
    return {"images": num,
            "maps_with_different_uint8": int((q_exact != q_f32).any(axis=(1, 2)).sum()),
            "max_level_difference": int(np.abs(q_exact.astype(int) - q_f32).max()),
            "max_correct_count_difference_per_threshold": int(round(max(count_diffs))),
            **{f"{k}_{tag}": float(r[k]) for k in ("max_box_acc", "max_box_acc_v2", "pxap")
               for tag, r in (("exact", exact), ("float32", f32))}}


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    cams = rng.random((args.num_images, *GRID), dtype=np.float32)
    costs = time_per_image(cams[:min(len(cams), 1024)], args.rounds)
    for name, ms in costs.items():
        print(f"{name:32s}: {ms:7.3f} ms/image (median of {args.rounds} interleaved rounds)")
    constant = np.broadcast_to(rng.normal(size=(args.num_constant, 1, 1)).astype(np.float32) * 5,
                               (args.num_constant, *GRID)).copy()
    results = {"ms_per_image": costs,
               "random_cams": compare("rand", cams, args.seed),
               "constant_cams": compare("const", constant, args.seed)}
    for key in ("random_cams", "constant_cams"):
        print(key, json.dumps(results[key]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
