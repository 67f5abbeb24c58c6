"""Metric sinks: JSON lines (for scripts) and TensorBoard (for people)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

JSONL = "metrics.jsonl"


def drop_rows_after(path: Path, step: int) -> int:
    """Remove the rows of a metrics.jsonl whose step is past `step`; returns how many went."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.strip() or json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        tmp.replace(path)
    return len(lines) - len(kept)


class MetricWriter:
    """`resume_step`: a run resumed from that step; later rows are dropped from metrics.jsonl and
    TensorBoard is told to discard its events past it (purge_step). `enabled=False` (every process
    but the first in a multi-process run) writes nothing."""

    def __init__(self, workdir: str | Path, tensorboard: bool = True,
                 resume_step: int | None = None, enabled: bool = True):
        self._jsonl = self._tb = None
        if not enabled:
            return
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            drop_rows_after(workdir / JSONL, resume_step)
        self._jsonl = open(workdir / JSONL, "a", encoding="utf-8")
        if tensorboard:
            from tensorboardX import SummaryWriter
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(workdir / "tensorboard"), purge_step=purge)

    def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
        if self._jsonl is None:
            return
        values = {k: float(np.asarray(v)) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": int(step), "split": prefix, **values}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{prefix}/{k}", v, int(step))

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
