"""The one step timer of the suite (Trainer callback, plain loop and DDP worker alike) and the
Trainer's token counter.

A step is timed from ``begin()`` to ``end()``, both synchronised with the device; the gap
between one step's end and the next one's begin is data loading and bookkeeping, kept
apart; time spent in a quick evaluation is excluded from both."""
from __future__ import annotations

from bench.core.steps import StepTimer  # noqa: F401  (re-exported: the trainer package's name for it)


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
