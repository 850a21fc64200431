"""Per-step timing of a training loop (synchronised on the step's device): what the DDP
worker, the plain loop and the Trainer callback all record."""
from __future__ import annotations

import time

from bench.core.hardware import synchronize


class StepTimer:
    """Per-step times, gaps between steps (data loading and bookkeeping), logged losses and
    quick evaluations (their time excluded from both)."""

    def __init__(self, device: str, quick_eval=None, eval_every: int = 0):
        self.device, self.quick_eval, self.eval_every = device, quick_eval, eval_every
        self.steps: list[float] = []
        self.gaps: list[float] = []
        self.losses: list[float] = []
        self.evals: list[tuple[float, float]] = []  # (training seconds so far, accuracy)
        self._t0 = self._last_end = None

    def begin(self):
        synchronize(self.device)
        now = time.perf_counter()
        if self._last_end is not None:
            self.gaps.append(now - self._last_end)
        self._t0 = now

    def end(self, step: int):
        synchronize(self.device)
        now = time.perf_counter()
        self.steps.append(now - self._t0)
        if self.eval_every and self.quick_eval and step % self.eval_every == 0:
            self.evals.append((sum(self.steps), self.quick_eval()))
            now = time.perf_counter()
        self._last_end = now
