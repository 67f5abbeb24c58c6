"""How much of the object a trained model's CAM covers on the embedded dataset, part vs. body.

    python benchmarks/synthetic_cam_coverage.py --config configs/synthetic_cam.py [--workdir runs/x]

For every test image: the CAM of the ground-truth class (resized and min-max normalised as in the
evaluation protocol) is thresholded at `--level` of its maximum; reported are the mean fraction of
*part* pixels and of *object* (body + part) pixels above the level, the fraction of images whose
CAM peak lies on the part (dilated by 2 px), and the part's share of the object. A CAM fixed on
the discriminative part has part coverage near 100 % and object coverage far below it.

What a model learned beyond the part: its Top-1 on the same test images drawn with the part painted
out (the generator draws each image again with the part's pixels left in the body's texture, every
other pixel identical; `top1_part_painted_out_%`), next to its Top-1 on the images as they are
(`top1_with_part_%`, through the same code path). Chance is 100 / num_classes.

Whether the maps depend on the input (`scoremap_distance_to_mean`): the mean absolute difference
between each image's normalised score map and the split's mean map, averaged over pixels and
images. 0 means every image gets the same map (a classifier that satisfies Where to Look's fusion
loss with input-independent CAMs); objects placed anywhere give CAMs that follow them far from 0.
`--split val` keeps a diagnostic off the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsolax import datasets, sharding  # noqa: E402
from wsolax.config import load_config  # noqa: E402
from wsolax.data import pipeline  # noqa: E402
from wsolax.data.metadata import load_mask  # noqa: E402
from wsolax.data.synth_render import render_example, split_labels  # noqa: E402
from wsolax.data.synthetic import load_part_masks, read_spec  # noqa: E402
from wsolax.data.transforms import Normalizer, resize  # noqa: E402
from wsolax.localization.cams import make_cam_extractor  # noqa: E402
from wsolax.evaluation.reference_scoremap import reference_scoremaps  # noqa: E402
from wsolax.checkpoint import restore_model  # noqa: E402


def part_out_accuracy(cfg, model, variables, mesh, meta, split, size, batch=100):
    """Top-1 (%) on the split's images re-drawn as they are and with the part painted out."""
    spec = read_spec(cfg.data.root)
    labels = split_labels(spec, split)
    normalize = Normalizer(cfg.data.mean, cfg.data.std)
    logits_of = jax.jit(lambda v, x: model.apply(v, x, train=False)["logits"])
    indices = [int(Path(i).stem) for i in meta.image_ids]
    correct = {False: 0, True: 0}
    for start in range(0, len(indices), batch):
        chunk = indices[start:start + batch]
        for painted_out in (False, True):
            images = np.stack([resize(render_example(spec, split, i, int(labels[i]),
                                                     paint_out_part=painted_out).image, size)
                               for i in chunk])
            x = normalize(images)
            pad = (-len(chunk)) % mesh.size
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
            logits = np.asarray(jax.device_get(logits_of(variables, sharding.put_batch(
                {"image": x}, mesh)["image"])))[:len(chunk)]
            correct[painted_out] += int((logits.argmax(-1) == labels[chunk]).sum())
    return 100.0 * correct[False] / len(indices), 100.0 * correct[True] / len(indices)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/synthetic_cam.py")
    p.add_argument("--workdir", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--level", type=float, default=0.5)
    args, overrides = p.parse_known_args()
    cfg = load_config(args.config, overrides)
    workdir = Path(args.workdir or cfg.workdir)
    mesh = sharding.data_mesh()
    model, variables, _ = restore_model(cfg, workdir, mesh)
    size = (cfg.data.crop_size, cfg.data.crop_size)
    extract = make_cam_extractor(model, mesh, size)
    meta = datasets.load_split(cfg.data, args.split)
    parts = load_part_masks(cfg.data.root, args.split)  # (N, h, w) at the original size
    kernel = np.ones((5, 5), np.uint8)
    part_cov, object_cov, peak_on_part, part_share, all_maps = [], [], [], [], []
    batches = pipeline.eval_batches(meta, batch_size=cfg.eval.batch_size, crop_size=size,
                                    mean=cfg.data.mean, std=cfg.data.std, resize=cfg.data.resize)
    for batch in pipeline.iterate(batches, num_threads=cfg.data.num_threads):
        b = sharding.put_batch({"image": batch["image"], "label": batch["label"]}, mesh)
        cams = jax.device_get(extract(variables, b["image"], b["label"])["cam_gt"])
        maps = reference_scoremaps(cams, size)
        for j in np.flatnonzero(batch["valid"]):
            index = int(batch["index"][j])
            obj = load_mask(meta, meta.image_ids[index], size) == 1
            part = cv2.resize(parts[index].astype(np.uint8), size[::-1],
                              interpolation=cv2.INTER_NEAREST) > 0
            all_maps.append(maps[j].astype(np.float32))
            hot = maps[j] >= args.level * maps[j].max()
            part_cov.append(hot[part].mean())
            object_cov.append(hot[obj].mean())
            part_share.append(part.sum() / max(obj.sum(), 1))
            y, x = np.unravel_index(np.argmax(maps[j]), maps[j].shape)
            peak_on_part.append(bool(cv2.dilate(part.astype(np.uint8), kernel)[y, x]))
    top1_with, top1_without = part_out_accuracy(cfg, model, variables, mesh, meta, args.split, size)
    stacked = np.stack(all_maps)
    distance = float(np.abs(stacked - stacked.mean(axis=0)).mean())
    report = {
        "split": args.split, "images": len(part_cov), "level": args.level,
        "scoremap_distance_to_mean": round(distance, 4),
        "part_pixels_covered_%": round(100 * float(np.mean(part_cov)), 1),
        "object_pixels_covered_%": round(100 * float(np.mean(object_cov)), 1),
        "cam_peak_on_part_%": round(100 * float(np.mean(peak_on_part)), 1),
        "part_share_of_object_%": round(100 * float(np.mean(part_share)), 1),
        "top1_with_part_%": round(top1_with, 1),
        "top1_part_painted_out_%": round(top1_without, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
