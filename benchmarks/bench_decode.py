"""Decode throughput at CUB-like size, from image files and from TFDS records.

Writes N photo-like JPEGs (500x375, quality 90 by default) in the metadata
layout into a temporary folder, prepares them as TFDS records, then times

  read           the encoded bytes only (file read / record read + parse)
  decode         read + decode to RGB (what every training image costs), by
                 each decoder of the pipelines compared (Pillow, OpenCV)
  train batches  decode + resize 256 + random crop 224 + flip + normalise +
                 batch, through `iterate` with its reader threads, for each
                 `data.resize` pipeline (pil_bilinear: Pillow decodes and
                 resizes with antialiasing, the benchmark's; cv2_linear)

for each thread count, in images per second. Example:

  python benchmarks/bench_decode.py --num-images 512 --threads 1 2 --json out.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import PIL

from wsolax.data import metadata as md
from wsolax.data import tfds_builder, tfds_source
from wsolax.data.image_io import decode_rgb
from wsolax.data.pipeline import iterate, train_batches
from wsolax.data.transforms import DECODER_OF, RESIZE_METHODS


def _photo(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth colour fields plus fine grain: compresses like a photo, unlike
    pure noise (far too big) or flat colour (far too small)."""
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    detail = cv2.resize(rng.normal(0, 16, (h // 4, w // 4, 3)).astype(np.float32), (w, h))
    image += detail + rng.normal(0, 4, (h, w, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_jpeg_set(root: Path, num: int, size_wh: tuple[int, int], quality: int) -> None:
    """A metadata-layout train split of `num` JPEGs, one box each."""
    rng = np.random.default_rng(0)
    w, h = size_wh
    (root / "images").mkdir(parents=True)
    ids = [f"images/{k:06d}.jpg" for k in range(num)]
    for image_id in ids:
        cv2.imwrite(str(root / image_id), _photo(rng, w, h), [cv2.IMWRITE_JPEG_QUALITY, quality])
    folder = root / "metadata" / "train"
    folder.mkdir(parents=True)
    tables = {
        md.IMAGE_IDS_FILE: ids,
        md.CLASS_LABELS_FILE: [f"{i},{k % 10}" for k, i in enumerate(ids)],
        md.IMAGE_SIZES_FILE: [f"{i},{w},{h}" for i in ids],
        md.LOCALIZATION_FILE: [f"{i},{w // 4},{h // 4},{3 * w // 4},{3 * h // 4}" for i in ids],
    }
    for name, lines in tables.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines))


def _rate(work, count: int, threads: int, repeats: int) -> float:
    """Median images/s of `work(k)` for k in range(count) over `threads` threads."""
    rates = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(min(count, 8))))  # warm-up: open files, first allocations
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(work, range(count)))
            rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def _batch_rate(meta, args, threads: int, resize: str) -> float:
    # Explicitly one process: asking jax would start its backend (and grab a GPU) for nothing.
    ds = train_batches(meta, batch_size=args.batch_size, resize_size=args.resize_size,
                       crop_size=args.crop_size, seed=0, resize=resize, process_index=0,
                       process_count=1)
    batches = iterate(ds, num_threads=threads)
    next(batches)  # warm-up: thread start
    count = args.batches
    start = time.perf_counter()
    images = sum(len(next(batches)["label"]) for _ in range(count))
    return images / (time.perf_counter() - start)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=16, help="timed batches per setting")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="passes per read/decode timing")
    parser.add_argument("--resize", nargs="+", default=list(RESIZE_METHODS),
                        choices=RESIZE_METHODS, help="data.resize pipelines to compare")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "set", Path(tmp) / "tfds"
        write_jpeg_set(root, args.num_images, (args.width, args.height), args.quality)
        start = time.perf_counter()
        tfds_builder.prepare("synthetic", out, root)
        prepare_s = time.perf_counter() - start
        folder = md.load_split(root / "metadata", root, "train")
        records = tfds_source.load_split(out, "synthetic", "train")
        paths = [folder.image_path(i) for i in folder.image_ids]
        file_kb = statistics.mean(p.stat().st_size for p in paths) / 1024
        reader = records.image_reader()

        work = {
            ("files", "read"): lambda k: paths[k].read_bytes(),
            ("tfds", "read"): lambda k: reader.records[k]["image"],
        }
        for method in args.resize:
            decoder = DECODER_OF[method]
            work[("files", f"decode {decoder}")] = (
                lambda k, d=decoder: decode_rgb(paths[k], decoder=d))
            work[("tfds", f"decode {decoder}")] = records.image_reader(decoder)
        results = []
        for threads in args.threads:
            for (source, stage), fn in work.items():
                rate = _rate(fn, args.num_images, threads, args.repeats)
                results.append(dict(source=source, stage=stage, threads=threads,
                                    images_per_s=round(rate, 1)))
            for method in args.resize:
                for source, meta in (("files", folder), ("tfds", records)):
                    rate = _batch_rate(meta, args, threads, method)
                    results.append(dict(source=source, stage=f"train batches {method}",
                                        threads=threads, images_per_s=round(rate, 1)))

    print(f"{args.num_images} JPEGs {args.width}x{args.height} q{args.quality} "
          f"(mean {file_kb:.0f} KB); train batches {args.batch_size} at "
          f"{args.resize_size}->{args.crop_size}; TFDS prepare {prepare_s:.1f} s")
    print(f"{'stage':<26} {'source':<6} " + " ".join(f"{t:>3} thr img/s" for t in args.threads))
    stages = ["read", *(f"decode {DECODER_OF[m]}" for m in args.resize),
              *(f"train batches {m}" for m in args.resize)]
    for stage in stages:
        for source in ("files", "tfds"):
            rates = [r["images_per_s"] for t in args.threads for r in results
                     if (r["stage"], r["source"], r["threads"]) == (stage, source, t)]
            print(f"{stage:<26} {source:<6} " + " ".join(f"{x:>13.0f}" for x in rates))
    if args.json:
        report = dict(
            settings=vars(args), mean_file_kb=round(file_kb, 1), tfds_prepare_s=round(prepare_s, 2),
            results=results,
            machine=dict(cpu=_cpu_model(), cpu_count=os.cpu_count(), python=platform.python_version(),
                         opencv=cv2.__version__, pillow=PIL.__version__, niceness=os.nice(0),
                         loadavg_before=load_before, loadavg_after=os.getloadavg()))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
