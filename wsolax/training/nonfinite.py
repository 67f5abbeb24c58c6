"""Stopping a run at its first non-finite loss term (`train.stop_on_nonfinite`).

The train loop keeps each step's metrics on device and reads them back once per logging interval
(and before every checkpoint), for the log and this check alike, so the check costs no extra
device round trip. A step is
non-finite when its total loss, any logged loss term (`loss_*`) or its gradient norm is NaN or
infinite; the gradient norm counts because a finite loss with an infinite gradient already makes
the next parameters non-finite. The state after such a step is never checkpointed: the last
checkpoint on disk is the last one whose steps were all finite.
"""

from __future__ import annotations

import math


class NonFiniteLoss(RuntimeError):
    """Training met a non-finite loss term; `step` (1-based, the step that produced it) and
    `term` name it, `last_checkpoint` is the latest finite step saved (None: none)."""

    def __init__(self, step: int, term: str, value: float, last_checkpoint: int | None):
        self.step, self.term, self.value, self.last_checkpoint = step, term, value, last_checkpoint
        kept = (f"the last checkpoint, step {last_checkpoint}, has only finite steps"
                if last_checkpoint is not None else "no checkpoint was written")
        super().__init__(f"training stopped at step {step}: {term} is {value} (not finite); "
                         f"{kept} (--config.train.stop_on_nonfinite=False trains on)")


def watched(metrics: dict) -> list[str]:
    """The metric names whose non-finite value stops a run: the loss terms first (the most
    specific name is the one reported), then the total, then the gradient norm."""
    terms = sorted(k for k in metrics if k.startswith("loss_"))
    return terms + [k for k in ("loss", "grad_norm") if k in metrics]


def first_nonfinite(window: list[dict], first_step: int) -> tuple[int, str, float] | None:
    """(step, term, value) of the first non-finite watched metric in `window`, the host-side
    metrics of steps first_step, first_step + 1, ... (1-based); None when all are finite."""
    if not window:
        return None
    names = watched(window[0])
    for offset, metrics in enumerate(window):
        for name in names:
            if not math.isfinite(float(metrics[name])):
                return first_step + offset, name, float(metrics[name])
    return None
