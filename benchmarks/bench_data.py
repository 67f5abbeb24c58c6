"""Throughput of the training input pipeline (decode + augment + batch).

Generates the default synthetic set if it is not there yet, then times
`train_batches` read directly (one thread) and through `iterate` with a few
thread counts and worker processes, decoding every time and from the
in-memory cache. Example:

  python benchmarks/bench_data.py --root data/synthetic --threads 1 2 4 --workers 2
"""

from __future__ import annotations

import argparse
import time

from absl import flags

from wsolax.data.pipeline import eval_batches, iterate, train_batches
from wsolax.data.synthetic import SyntheticSpec, load_synthetic_split, write_synthetic_dataset


def _images_per_second(batches, num_batches: int) -> float:
    batches = iter(batches)
    next(batches)  # warm-up: thread start, first-touch allocations
    start = time.perf_counter()
    images = sum(len(next(batches)["label"]) for _ in range(num_batches))
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--resize-size", type=int, default=72)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per setting")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--workers", type=int, nargs="*", default=[2],
                        help="also time these numbers of worker processes")
    args = parser.parse_args()
    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags

    root = write_synthetic_dataset(args.root, SyntheticSpec())
    meta = load_synthetic_split(root, "train")
    print(f"train split: {len(meta)} images; batch {args.batch_size}, "
          f"resize {args.resize_size}, crop {args.crop_size}")
    for cache in (False, True):
        ds = train_batches(meta, batch_size=args.batch_size, resize_size=args.resize_size,
                           crop_size=args.crop_size, seed=0, cache_images=cache)
        print(f" cache_images={cache}")
        direct = (ds[i] for i in range(args.batches + 1))
        rate = _images_per_second(direct, args.batches)
        print(f"  ds[i] in the caller's thread : {rate:8.0f} images/s")
        for threads in args.threads:
            rate = _images_per_second(iterate(ds, num_threads=threads), args.batches)
            print(f"  iterate(num_threads={threads:2d})       : {rate:8.0f} images/s")
        for workers in args.workers:
            rate = _images_per_second(iterate(ds, num_threads=2, num_workers=workers),
                                      args.batches)
            print(f"  iterate(num_workers={workers:2d}, 2 threads each): {rate:8.0f} images/s")

    val = load_synthetic_split(root, "test")
    ev = eval_batches(val, batch_size=args.batch_size, crop_size=args.crop_size)
    rate = _images_per_second(iterate(ev, num_threads=args.threads[-1]), len(ev) - 1)
    print(f"eval (test split, {args.threads[-1]} threads)  : {rate:8.0f} images/s")


if __name__ == "__main__":
    main()
