"""Pretrain a backbone and save it for `model.init_from`: train, score on val, export, checksum.

    python -m wsolax.pretrain --config configs/pretrain_objects.py \
        --out weights/pretrain_objects_tiny16.safetensors [--workdir runs/x] [--config.key=value]

The embedded benchmark's stand-in for ImageNet weights (configs/pretrain_objects.py). A workdir
that already holds the finished run is reused (only exported again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from wsolax.cli import guarded, split_overrides
from wsolax.config import load_config


def sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tensors_sha256(path: str | Path) -> str:
    """Checksum of the tensors alone (names, dtypes, shapes, values), independent of the file's
    metadata, which records the workdir the weights came from."""
    from safetensors.numpy import load_file

    digest = hashlib.sha256()
    for name, value in sorted(load_file(str(path)).items()):
        digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    rest, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m wsolax.pretrain", description=__doc__.split("\n")[0],
                                allow_abbrev=False)
    p.add_argument("--config", required=True, help="configs/<name>.py[:arg]")
    p.add_argument("--workdir", default=None, help="training folder (default: config.workdir)")
    p.add_argument("--out", required=True, help="output .safetensors (the backbone only)")
    args = p.parse_args(rest)

    def run():
        cfg = load_config(args.config, overrides)
        from wsolax.localization.run import evaluate
        from wsolax.checkpoint import Checkpointer
        from wsolax.training.loop import train
        from wsolax.weights.from_checkpoint import export_checkpoint

        workdir = Path(args.workdir or cfg.workdir)
        start = time.perf_counter()
        ckpt = Checkpointer(workdir / "checkpoints")
        done = ckpt.latest_step()
        ckpt.close()
        result = train(cfg, workdir, resume=done is not None)
        seconds = time.perf_counter() - start
        summary = evaluate(cfg, workdir, splits=[cfg.eval.threshold_split])
        val = summary["splits"][cfg.eval.threshold_split]
        out = export_checkpoint(cfg, workdir, args.out, part="backbone")
        record = {"config": args.config, "overrides": overrides, "out": str(out),
                  "sha256": sha256(out), "tensors_sha256": tensors_sha256(out),
                  "steps": result.total_steps,
                  "train_seconds": round(seconds, 1),
                  "val_top1_cls": round(float(val["top1_cls"]), 2)}
        (workdir / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record, indent=2))

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
