"""Optional process-level parallelism for the per-image box computation.

The per-image work is independent and CPU-bound, so it spreads over
processes.  Workers are started with "spawn": the parent process usually
runs JAX (multi-threaded), which must not be forked.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .boxes import BoxIoUCurves, box_iou_curves, box_iou_curves_batch


class BoxCurveRunner:
    """Computes `box_iou_curves` for batches, in-process or in a pool.

    The pool is created on first use and kept for later batches (a training
    loop evaluates many times); call `close()` when done.
    """

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}.")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, qmaps: np.ndarray, gt_boxes: list[np.ndarray],
                 thresholds: np.ndarray) -> list[BoxIoUCurves]:
        if self.workers == 1 or len(qmaps) < 2:
            return [box_iou_curves(q, gt, thresholds)
                    for q, gt in zip(qmaps, gt_boxes)]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        # A few chunks per worker balance uneven maps without paying the
        # inter-process cost per image.
        num_chunks = min(len(qmaps), 4 * self.workers)
        bounds = np.linspace(0, len(qmaps), num_chunks + 1).astype(int)
        futures = [self._pool.submit(box_iou_curves_batch, qmaps[a:b],
                                     gt_boxes[a:b], thresholds)
                   for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        return [curves for f in futures for curves in f.result()]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
