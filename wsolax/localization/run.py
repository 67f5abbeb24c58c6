"""Evaluate a checkpoint: extract CAMs (jitted, sharded), score them, write metrics and a report.

The CAM threshold for the threshold-dependent metrics (Top-1 Loc, GT-known Loc) is chosen on the
config's `eval.threshold_split` (val: small, fully labelled) and applied to the evaluated splits;
each metric is also reported at its own best threshold on the evaluated split, labelled as such.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from wsolax import datasets, sharding
from wsolax.checkpoint import restore_model
from wsolax.config import ConfigError
from wsolax.data import pipeline
from wsolax.data.metadata import load_mask
from wsolax.localization.cams import gt_scoremaps, make_cam_extractor
from wsolax.evaluation.evaluator import WSOLEvaluator, best_threshold_index
from wsolax.evaluation.protocol import make_thresholds
from wsolax.localization.processes import merge_across_processes
from wsolax.localization.report import format_table, write_overlays, write_report

def _scalars(result: dict) -> dict:
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v))
            for k, v in result.items() if np.ndim(v) == 0 and isinstance(v, (int, float, np.number))}


def collect_split(cfg: ml_collections.ConfigDict, split: str, extractor, variables, mesh,
                  keep: int = 0):
    """Run the extractor over a split and feed an evaluator; returns (evaluator, kept examples).
    `compute()` can then be called on the evaluator for any threshold index."""
    meta = datasets.load_split(cfg.data, split)
    size = (cfg.data.crop_size, cfg.data.crop_size)
    mask_loader = (lambda image_id: load_mask(meta, image_id, size)) if meta.masks else None
    evaluator = WSOLEvaluator(gt_boxes=meta.boxes, image_sizes=meta.sizes, input_size=size,
                              cam_curve_interval=cfg.eval.cam_curve_interval,
                              iou_thresholds=tuple(cfg.eval.iou_thresholds),
                              mask_loader=mask_loader, workers=cfg.eval.workers)
    batches = pipeline.eval_batches(meta, batch_size=cfg.eval.batch_size, crop_size=size,
                                    mean=cfg.data.mean, std=cfg.data.std, resize=cfg.data.resize,
                                    max_boxes=cfg.data.max_boxes)
    kept = []
    bar = tqdm(pipeline.iterate(batches, num_threads=cfg.data.num_threads), total=len(batches),
               desc=f"eval {split}", unit="batch", disable=not cfg.train.progress_bar)
    for batch in bar:
        device_batch = sharding.put_batch({"image": batch["image"], "label": batch["label"]}, mesh)
        out = {k: sharding.local_rows(v) for k, v in
               extractor(variables, device_batch["image"], device_batch["label"]).items()}
        valid = np.asarray(batch["valid"], bool)
        ids = [meta.image_ids[i] for i in np.asarray(batch["index"])[valid]]
        # Default "exact": the reference's float64 resize + normalisation of the raw CAMs.
        scoremaps = gt_scoremaps(out, cfg.eval.scoremap, size)
        evaluator.accumulate(ids, scoremaps[valid], batch["label"][valid],
                             top1=out["top1"][valid], top5=out["topk"][valid])
        for image_id, j in zip(ids, np.flatnonzero(valid)):
            if len(kept) >= keep:
                break
            image = batch["image"][j] * np.asarray(cfg.data.std) + np.asarray(cfg.data.mean)
            kept.append({"image_id": image_id, "image": image, "label": int(batch["label"][j]),
                         "top1": int(out["top1"][j]), "scoremap": scoremaps[j],
                         "gt_boxes": meta.boxes[image_id], "image_size": meta.sizes[image_id]})
    return merge_across_processes(evaluator, split), kept


def compute_result(evaluator: WSOLEvaluator, threshold_index: int | None = None) -> dict:
    """All metrics at `threshold_index`, plus the mask-coverage diagnostics where masks exist."""
    result = evaluator.compute(threshold_index=threshold_index)
    if threshold_index is not None and "pxap_recall" in result:
        result.update(mask_coverage_at(result, threshold_index))
    return result


def score_split(cfg: ml_collections.ConfigDict, split: str, extractor, variables, mesh,
                threshold_index: int | None = None, keep: int = 0):
    """`collect_split` then `compute_result`; returns (result, kept examples)."""
    evaluator, kept = collect_split(cfg, split, extractor, variables, mesh, keep)
    return compute_result(evaluator, threshold_index), kept


def mask_coverage_at(result: dict, tau_index: int) -> dict:
    """Diagnostic beyond the protocol: at tau, the % of object pixels whose score is >= tau
    (coverage: low means the CAM under-covers the object) and the % of pixels >= tau that lie on
    the object. Read off PxAP's curve, which sweeps the histogram bins from the top: the point
    for thresholds[i] is at position len - 1 - i."""
    j = len(result["pxap_recall"]) - 1 - tau_index
    return {"mask_coverage@val_tau": 100.0 * float(result["pxap_recall"][j]),
            "mask_precision@val_tau": 100.0 * float(np.nan_to_num(result["pxap_precision"][j]))}


def evaluate(cfg: ml_collections.ConfigDict, workdir: str | Path, splits=None, devices=None) -> dict:
    workdir = Path(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise FileNotFoundError(f"no checkpoints folder in {workdir}; train first "
                                f"(python train.py --config ...)")
    mesh = sharding.data_mesh(devices)
    sharding.check_batch_size(cfg.eval.batch_size, mesh, "eval.batch_size")
    model, variables, step = restore_model(cfg, workdir, mesh)
    size = (cfg.data.crop_size, cfg.data.crop_size)
    extractor = make_cam_extractor(model, mesh, size, scoremap=cfg.eval.scoremap)

    splits = list(splits or cfg.eval.splits)
    threshold_split, tau_source = threshold_source(cfg)
    collected, tau_index = {}, None
    if threshold_split is not None:
        # The threshold split is scored once: its evaluator is reused if it is also reported.
        collected[threshold_split] = collect_split(
            cfg, threshold_split, extractor, variables, mesh,
            keep=cfg.eval.num_overlays if threshold_split in splits else 0)
        tau_index = best_threshold_index(compute_result(collected[threshold_split][0]))
    elif cfg.eval.tau is not None:
        tau_index = fixed_threshold_index(cfg.eval.tau, cfg.eval.cam_curve_interval)
    else:
        print(f"no '{cfg.eval.threshold_split}' split to choose the CAM threshold on: MaxBoxAcc, "
              f"MaxBoxAccV2 and PxAP are reported, Top-1 Loc and GT-known Loc at tau are not "
              f"(give one with --config.eval.tau=<value>)")
    thresholds = make_thresholds(cfg.eval.cam_curve_interval)  # every evaluator's grid
    tau = None if tau_index is None else float(thresholds[tau_index])

    out_dir = workdir / "eval"
    writes = jax.process_index() == 0  # every process holds the merged result; one writes it
    if writes:
        out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"threshold_split": threshold_split, "tau_source": tau_source,
               "tau_index": tau_index, "tau": tau, "checkpoint_step": step, "splits": {}}
    results = {}
    for split in splits:
        evaluator, kept = collected.get(split) or collect_split(
            cfg, split, extractor, variables, mesh, keep=cfg.eval.num_overlays)
        result = compute_result(evaluator, tau_index)
        results[split] = result
        summary["splits"][split] = _scalars(result)
        overlay_dir = out_dir / f"overlays_{split}"
        if writes:
            np.savez_compressed(out_dir / f"curves_{split}.npz",
                                **{k: np.asarray(v) for k, v in result.items() if np.ndim(v) == 1})
            # Without a tau, the overlays draw the box at the split's own best one.
            overlay_dir = write_overlays(kept, overlay_dir,
                                         result["best_tau_gt_known"] if tau is None else tau, size)
        summary["splits"][split]["overlays"] = str(overlay_dir)
    report = out_dir / "report.md"
    if writes:
        (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        report = write_report(out_dir, summary, results)
    summary["report"] = str(report)
    summary["metrics_file"] = str(out_dir / "metrics.json")
    return summary


def threshold_source(cfg: ml_collections.ConfigDict) -> tuple[str | None, str]:
    """(the split tau is chosen on, or None; how tau is set, in words). eval.tau given wins; a
    threshold split whose metadata folder does not exist is no error: the threshold-free
    metrics are still reported (a user may hold only a test split)."""
    if cfg.eval.tau is not None:
        return None, f"given (eval.tau = {cfg.eval.tau})"
    split = cfg.eval.threshold_split
    if datasets.split_exists(cfg.data, split):
        return split, f"chosen on '{split}' (max GT-known box accuracy there)"
    return None, f"none: no '{split}' split"


def fixed_threshold_index(tau: float, interval: float) -> int:
    """The index of `tau` on the evaluator's grid 0, interval, 2 interval, ... < 1."""
    thresholds = make_thresholds(interval)
    index = int(np.abs(thresholds - tau).argmin())
    if abs(thresholds[index] - tau) >= 1e-9:
        raise ConfigError(f"eval.tau={tau} is not on the threshold grid 0, {interval}, "
                          f"{2 * interval:g}, ... (eval.cam_curve_interval)")
    return index


def print_summary(summary: dict) -> None:
    print(f"\nCAM threshold tau: {summary['tau_source']}"
          + ("" if summary["tau"] is None else f", tau = {summary['tau']:.3f}")
          + "; '@best_tau' rows use each split's own best tau.")
    print(format_table(summary))
    print(f"\nmetrics: {summary['metrics_file']}\nreport:  {summary['report']}")
    for split, values in summary["splits"].items():
        print(f"overlays ({split}): {values['overlays']}")
