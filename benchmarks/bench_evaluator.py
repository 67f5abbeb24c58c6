"""Benchmark: fast WSOL evaluator vs the literal reference loop.

Generates CUB-sized synthetic data (5,794 CAM-like 224x224 score maps: random
14x14 CAMs, cv2-bicubic upsampled and normalised; 1-3 GT boxes per image in
random non-square original sizes), runs the literal oracle and the fast
evaluator on identical inputs, asserts identical outputs and prints timings.

    python benchmarks/bench_evaluator.py                        # full run
    python benchmarks/bench_evaluator.py --literal-subset 300   # extrapolated
    python benchmarks/bench_evaluator.py --from-cams            # + score maps

Score maps are regenerated per batch from a seed (the full set would take
1.2 GB); generation is not timed, only accumulate() and compute().  With
`--from-cams` the batches are the raw 14x14 CAMs instead and the score-map
preparation is timed too: the evaluation path's default (`reference_scoremaps`,
float64, exact) on the fast side, the reference's own per-map loop (float64
cast, cv2.resize, in-place min-max) on the literal side.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from wsolax.evaluation import WSOLEvaluator, box_iou_curves
from wsolax.evaluation.oracle import (LiteralEvaluator, literal_v1_ious,
                                      resize_box)
from wsolax.evaluation.protocol import make_thresholds
from wsolax.evaluation.reference_scoremap import reference_scoremaps
from wsolax.evaluation.synthetic import cam_like_scoremaps, random_annotations

INPUT = (224, 224)
GRID = (14, 14)
NUM_CLASSES = 200
BATCH = 64


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=5794)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the fast evaluator")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of the fast evaluator (the machine "
                             "is shared, so the median is reported)")
    parser.add_argument("--literal-subset", type=int, default=None,
                        help="time the literal loop on the first N images "
                             "only and extrapolate")
    parser.add_argument("--v1-subset", type=int, default=100,
                        help="also time the cheapest literal loop (V1 "
                             "boxes only) on the first N images; 0 = skip")
    parser.add_argument("--masks", action="store_true",
                        help="also compute PxAP on synthetic masks")
    parser.add_argument("--from-cams", action="store_true",
                        help="feed raw 14x14 CAMs and time the score-map "
                             "preparation too (exact path vs the reference's "
                             "per-map loop)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=str, default=None,
                        help="write the numbers to this file")
    return parser.parse_args()


class Data:
    """Deterministic synthetic data set, generated batch by batch."""

    def __init__(self, num_images: int, seed: int):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.ids = [f"img{i:05d}" for i in range(num_images)]
        self.gt_boxes, self.sizes = random_annotations(rng, self.ids)
        self.labels = rng.integers(0, NUM_CLASSES, num_images)
        # ~75% top-1 accuracy, top-5 containing the label ~90% of the time.
        wrong = rng.integers(0, NUM_CLASSES, num_images)
        self.top1 = np.where(rng.random(num_images) < 0.75, self.labels, wrong)
        self.top5 = rng.integers(0, NUM_CLASSES, (num_images, 5))
        self.top5[:, 0] = np.where(rng.random(num_images) < 0.9, self.labels,
                                   self.top5[:, 0])

    def batches(self, num_images: int, raw_cams: bool = False):
        for start in range(0, num_images, BATCH):
            stop = min(start + BATCH, num_images)
            rng = np.random.default_rng((self.seed, start))
            if raw_cams:  # the CAMs cam_like_scoremaps would draw from rng
                maps = np.stack([rng.random(GRID, dtype=np.float32)
                                 for _ in range(stop - start)])
            else:
                maps = cam_like_scoremaps(rng, stop - start, INPUT)
            s = slice(start, stop)
            yield (self.ids[s], maps, self.labels[s], self.top1[s],
                   self.top5[s])

    def mask_of(self, image_id: str) -> np.ndarray:
        """A blob-shaped mask with ignored pixels, seeded by the id."""
        rng = np.random.default_rng((self.seed, int(image_id[3:]), 1))
        blob = cam_like_scoremaps(rng, 1, INPUT, (4, 4))[0] > 0.6
        mask = blob.astype(np.uint8)
        mask[rng.random(INPUT) < 0.02] = 255
        return mask


def reference_loop(cams: np.ndarray) -> np.ndarray:
    """The reference's score-map steps, one map at a time, as it writes them."""
    maps = []
    for cam in cams.astype(np.float64):
        m = cv2.resize(cam, INPUT[::-1], interpolation=cv2.INTER_CUBIC)
        if np.isnan(m).any() or m.min() == m.max():
            m = np.zeros_like(m)
        else:
            m -= m.min()
            m /= m.max()
        maps.append(m)
    return np.stack(maps)


def run(evaluator, data: Data, num_images: int, prepare=None):
    """Feed the first num_images images; returns (result, seconds).  With
    `prepare` the batches are raw CAMs and prepare(cams) -> score maps is
    timed with the evaluator."""
    seconds = 0.0
    for ids, maps, *rest in data.batches(num_images, prepare is not None):
        start = time.perf_counter()
        if prepare is not None:
            maps = prepare(maps)
        evaluator.accumulate(ids, maps, *rest)
        seconds += time.perf_counter() - start
    start = time.perf_counter()
    result = evaluator.compute(threshold_index=500)
    seconds += time.perf_counter() - start
    return result, seconds


def time_v1_only_loop(data: Data, num_images: int) -> float:
    """Seconds per image of the literal V1-only loop (no V2, no metrics)."""
    thresholds = list(make_thresholds())
    seconds = 0.0
    for ids, maps, *_ in data.batches(num_images):
        for image_id, scoremap in zip(ids, maps):
            gt = np.asarray([resize_box(b, data.sizes[image_id], INPUT[::-1])
                             for b in data.gt_boxes[image_id]])
            start = time.perf_counter()
            literal_v1_ious(scoremap, gt, thresholds)
            seconds += time.perf_counter() - start
    return seconds / num_images


def assert_identical(fast: dict, slow: dict) -> None:
    assert fast.keys() == slow.keys(), set(fast) ^ set(slow)
    for key in fast:
        if isinstance(fast[key], np.ndarray):
            assert np.array_equal(fast[key], slow[key], equal_nan=True), key
        else:
            assert fast[key] == slow[key], (key, fast[key], slow[key])


def main():
    args = parse_args()
    n = args.num_images
    n_literal = min(args.literal_subset or n, n)
    data = Data(n, args.seed)
    kwargs = dict(input_size=INPUT,
                  mask_loader=data.mask_of if args.masks else None)
    # Compile (or load from cache) the numba kernels outside the timing.
    box_iou_curves(np.zeros(INPUT, np.uint8) + 1, np.array([[0, 0, 9, 9]]),
                   np.arange(0, 1, 0.5))

    print(f"images: {n} ({INPUT[0]}x{INPUT[1]}), thresholds: 1000, "
          f"fast workers: {args.workers}, masks: {args.masks}, "
          f"score maps timed (from 14x14 CAMs): {args.from_cams}")
    fast_prepare = literal_prepare = None
    if args.from_cams:
        fast_prepare = lambda cams: reference_scoremaps(cams, INPUT)  # noqa: E731
        literal_prepare = reference_loop
    fast_runs = []
    for _ in range(max(args.repeats, 1)):
        with WSOLEvaluator(data.gt_boxes, data.sizes, workers=args.workers,
                           **kwargs) as fast:
            fast_result, seconds = run(fast, data, n, fast_prepare)
            stats = fast.fallback_stats
        fast_runs.append(seconds)
    fast_s = float(np.median(fast_runs))
    print(f"fast    : {fast_s:8.2f} s, {1e3 * fast_s / n:8.3f} ms/image "
          f"(median of runs: {', '.join(f'{s:.2f}' for s in fast_runs)} s)")

    literal = LiteralEvaluator(data.gt_boxes, data.sizes, **kwargs)
    literal_result, literal_s = run(literal, data, n_literal, literal_prepare)
    per_image = literal_s / n_literal
    extrapolated = n_literal < n
    label = (f"EXTRAPOLATED from {literal_s:.2f} s measured on the first "
             f"{n_literal} images" if extrapolated else "measured")
    print(f"literal : {per_image * n:8.2f} s, {1e3 * per_image:8.3f} ms/image "
          f"[{label}]")

    if extrapolated:
        with WSOLEvaluator(data.gt_boxes, data.sizes, **kwargs) as subset:
            reference, _ = run(subset, data, n_literal, fast_prepare)
    else:
        reference = fast_result
    assert_identical(reference, literal_result)
    speedup = per_image * n / fast_s
    print(f"speed-up: {speedup:.1f}x{' (extrapolated literal time)' if extrapolated else ''}")
    print(f"outputs identical on {n_literal} images: yes")
    print(f"fallback: {stats['num_fallback_cuts']} of {stats['num_cuts']} "
          f"cuts ({100 * stats['fallback_rate']:.3f}%), "
          f"{stats['num_fallback_cuts'] / n:.3f} per image")
    v1_per_image = None
    if args.v1_subset:
        n_v1 = min(args.v1_subset, n)
        v1_per_image = time_v1_only_loop(data, n_v1)
        print(f"literal V1-only loop: {1e3 * v1_per_image:8.3f} ms/image "
              f"[measured on the first {n_v1} images]; fast is "
              f"{v1_per_image * n / fast_s:.1f}x faster than it")
    metrics = {k: v for k, v in fast_result.items()
               if not isinstance(v, np.ndarray)}
    print("metrics (fast, all images):", json.dumps(metrics))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"num_images": n, "workers": args.workers,
                       "masks": args.masks, "from_cams": args.from_cams,
                       "fast_seconds": fast_s,
                       "fast_seconds_runs": fast_runs,
                       "fast_ms_per_image": 1e3 * fast_s / n,
                       "literal_images_timed": n_literal,
                       "literal_seconds_measured": literal_s,
                       "literal_ms_per_image": 1e3 * per_image,
                       "literal_extrapolated": extrapolated,
                       "speedup": speedup,
                       "literal_v1_only_ms_per_image":
                           None if v1_per_image is None
                           else 1e3 * v1_per_image,
                       "identical": True,
                       **stats, "metrics": metrics}, f, indent=2)


if __name__ == "__main__":
    main()
