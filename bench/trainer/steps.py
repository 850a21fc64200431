"""The one step timer of the suite (Trainer callback, plain loop and DDP worker alike) and the
Trainer's token counter.

A step is timed from ``begin()`` to ``end()``, both synchronised with the device; the gap
between one step's end and the next one's begin is data loading and bookkeeping, kept
apart; time spent in a quick evaluation is excluded from both."""
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


def callback(timer: StepTimer):
    from transformers import TrainerCallback

    class TimingCallback(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            timer.begin()

        def on_step_end(self, args, state, control, **kwargs):
            timer.end(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                timer.losses.append(float(logs["loss"]))

    return TimingCallback()


class TokenCountingCollator:
    """DataCollatorWithPadding that records each training batch's non-padding tokens."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorWithPadding

        self.inner = DataCollatorWithPadding(tokenizer)
        self.tokens: list[int] = []
        self.recording = True

    def __call__(self, features):
        batch = self.inner(features)
        if self.recording:
            self.tokens.append(int(batch["attention_mask"].sum()))
        return batch
