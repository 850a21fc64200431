"""Result rows: one per case, whatever happened to it.

A row is created for every collected case that declares one (``bench_row`` marker), so a
case that is skipped, fails, runs out of memory or never reaches the timer is still in the
report with a status and a reason (PITFALLS 13).
"""
from __future__ import annotations

from typing import Any

import pytest

STATUSES = ("ok", "mismatch", "unsupported", "error", "oom", "skipped")

# Leading columns of each suite's CSV (the contract); other keys a test records follow them.
SUITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "autograd_ops": ("op", "device", "dtype", "status", "reason", "checks_passed", "fwd_bwd_median_ms",
                     "native_median_ms", "speedup_vs_native"),
    "graph_modes": ("model", "mode", "device", "dtype", "phase", "status", "reason", "max_abs_err", "median_ms",
                    "p90_ms", "speedup_vs_eager", "build_s", "graph_breaks", "peak_mem_mib"),
    "devices": ("model", "device", "dtype", "phase", "batch_size", "status", "reason", "median_ms", "p90_ms",
                "p99_ms", "samples_per_s", "tokens_per_s", "tflops", "pct_of_peak", "pct_of_vendor_peak",
                "peak_mem_mib", "speedup_vs_cpu"),
    "ddp": ("model", "backend", "world_size", "threads_per_rank", "status", "reason", "step_ms_p50", "step_ms_p90",
            "samples_per_s", "scaling_efficiency", "comm_share", "grad_max_abs_diff"),
    "trainer": ("model", "precision", "batch_size", "grad_accum", "compile", "optim", "status", "reason",
                "samples_per_s", "tokens_per_s", "step_ms_p50", "step_ms_p95", "warmup_s", "train_runtime_s",
                "loss_first", "loss_last", "eval_accuracy", "time_to_accuracy_s", "mfu_pct"),
}


class CaseEnded(pytest.skip.Exception):
    """Raised by :meth:`Row.end` to stop a case that has a final non-ok status (oom,
    unsupported): pytest shows it as skipped, the row keeps the real status."""


class Row(dict):
    """A dict of report columns with a status. Tests fill metrics; the plugin sets the
    final status from the test's outcome unless the test already set one."""

    def __init__(self, suite: str, test: str, **keys: Any):
        if suite not in SUITE_COLUMNS:
            raise ValueError(f"unknown suite {suite!r}; valid: {', '.join(SUITE_COLUMNS)}")
        super().__init__(suite=suite, test=test, status=None, reason=None, **keys)

    def set_status(self, status: str, reason: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
        if status != "ok" and not reason:
            raise ValueError(f"status {status!r} needs a reason")
        self["status"], self["reason"] = status, reason

    def check(self, condition: bool, reason: str, status: str = "mismatch") -> None:
        """Assert a correctness condition; on failure the row says ``status`` and why."""
        if not condition:
            self.set_status(status, reason)
            raise AssertionError(f"{status}: {reason}")

    def end(self, status: str, reason: str):
        """Stop the case with a final non-ok status (e.g. ``oom``); the run goes on."""
        self.set_status(status, reason)
        raise CaseEnded(f"{status}: {reason}", _use_item_location=True)

    def finalize(self, outcome: str, message: str | None) -> None:
        """Set the status from the pytest outcome unless the test set one itself."""
        if self["status"] not in (None, "ok"):
            return
        if outcome == "passed":
            self["status"], self["reason"] = "ok", None
        elif outcome == "skipped":
            self["status"], self["reason"] = "skipped", message or "skipped"
        else:
            self["status"], self["reason"] = "error", message or "test failed"
