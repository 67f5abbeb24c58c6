"""Metric sinks: JSON lines (for scripts) and TensorBoard (for people)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class MetricWriter:
    def __init__(self, workdir: str | Path, tensorboard: bool = True):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
        values = {k: float(np.asarray(v)) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": int(step), "split": prefix, **values}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{prefix}/{k}", v, int(step))

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
