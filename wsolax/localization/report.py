"""Human-readable evaluation outputs: CAM overlays and a markdown report with threshold curves."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from wsolax.evaluation.oracle import boxes_at_threshold
from wsolax.evaluation.protocol import quantize_scoremap, rescale_boxes

GT_COLOUR = (0, 255, 0)  # RGB
PRED_COLOUR = (255, 0, 0)


def overlay(image_rgb: np.ndarray, scoremap: np.ndarray, gt_boxes: np.ndarray,
            pred_box, alpha: float = 0.5) -> np.ndarray:
    """Image | image + CAM heat map with GT (green) and predicted (red) boxes, side by side."""
    image = np.clip(image_rgb * 255.0, 0, 255).astype(np.uint8)
    heat = cv2.applyColorMap(quantize_scoremap(scoremap), cv2.COLORMAP_JET)[..., ::-1]
    blend = np.ascontiguousarray((alpha * heat + (1 - alpha) * image).astype(np.uint8))
    for x0, y0, x1, y1 in gt_boxes:
        cv2.rectangle(blend, (int(x0), int(y0)), (int(x1), int(y1)), GT_COLOUR, 1)
    x0, y0, x1, y1 = (int(v) for v in pred_box)
    cv2.rectangle(blend, (x0, y0), (x1, y1), PRED_COLOUR, 1)
    return np.concatenate([image, blend], axis=1)


def write_overlays(kept: list[dict], out_dir: Path, tau: float, input_hw: tuple[int, int]) -> Path:
    """One PNG per kept example; the predicted box is the largest-contour box at `tau`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, ex in enumerate(kept):
        q = quantize_scoremap(ex["scoremap"])[..., None]
        v1_box, _ = boxes_at_threshold(q, tau)
        gt = rescale_boxes(ex["gt_boxes"], ex["image_size"], input_hw)
        picture = overlay(ex["image"], ex["scoremap"], gt, v1_box[0])
        # Upscale small images so boxes stay visible; nearest keeps pixels honest.
        scale = max(1, 256 // picture.shape[0])
        picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", ex["image_id"])
        tag = f"label{ex['label']}_pred{ex['top1']}"
        cv2.imwrite(str(out_dir / f"{i:04d}_{tag}_{Path(name).stem}.png"), picture[..., ::-1])
    return out_dir


def _plot_curves(out_dir: Path, split: str, result: dict, tau: float | None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = result["thresholds"]
    fig, axes = plt.subplots(1, 2 if "pxap_precision" in result else 1, figsize=(11, 4), squeeze=False)
    ax = axes[0, 0]
    for key in sorted(k for k in result if k.startswith("box_acc_v2_curve@")):
        ax.plot(thresholds, result[key], label=f"V2 (all contours) IoU>={key.split('@')[1]}%")
    ax.plot(thresholds, result["box_acc_v1_curve@50"], "k--", label="V1 / GT-known Loc (IoU>=50%)")
    if "top1_loc_curve" in result:
        ax.plot(thresholds, result["top1_loc_curve"], ":", label="Top-1 Loc")
    if tau is not None:
        ax.axvline(tau, color="grey", lw=0.8, label=f"tau = {tau:.3f}")
    ax.set(xlabel="CAM threshold tau", ylabel="accuracy (%)", title=f"box accuracy vs tau ({split})",
           ylim=(0, 100))
    ax.legend(fontsize=7)
    if "pxap_precision" in result:
        ax = axes[0, 1]
        ax.plot(result["pxap_recall"], result["pxap_precision"])
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1),
               title=f"pixel PR curve, PxAP = {result['pxap']:.2f}")
    fig.tight_layout()
    path = out_dir / f"curves_{split}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out_dir: Path, summary: dict, results: dict) -> Path:
    lines = ["# wsolax evaluation report", "",
             f"Checkpoint step {summary['checkpoint_step']}. CAM threshold tau: "
             f"{summary['tau_source']}"
             + ("" if summary["tau"] is None else f", tau = {summary['tau']:.3f}, used for the "
                "`@val_tau` rows")
             + "; `@best_tau` rows use each split's own best tau.",
             "", "```", format_table(summary), "```", ""]
    for split, result in results.items():
        plot = _plot_curves(out_dir, split, result, summary["tau"])
        lines += [f"## {split}", "", f"![threshold curves]({plot.name})", "",
                  f"Overlays: `{summary['splits'][split]['overlays']}` "
                  "(left: input; right: CAM, GT box green, predicted box red).", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


# Scalars printed in the summary table, in this order (present ones only).
TABLE_KEYS = ("top1_cls", "top5_cls", "max_box_acc", "max_box_acc_v2", "max_box_acc_v2@30",
              "max_box_acc_v2@50", "max_box_acc_v2@70", "pxap", "gt_known_loc@val_tau",
              "top1_loc@val_tau", "gt_known_loc@best_tau", "top1_loc@best_tau",
              "mask_coverage@val_tau", "mask_precision@val_tau")


def format_table(summary: dict) -> str:
    splits = list(summary["splits"])
    rows = [("metric", *splits)]
    for key in TABLE_KEYS:
        if any(key in summary["splits"][s] for s in splits):
            rows.append((key, *(f"{summary['splits'][s][key]:.2f}" if key in summary["splits"][s]
                                else "-" for s in splits)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
