"""Result rows: one per case, whatever happened to it.

A row is created for every collected case that declares one (``bench_row`` marker), so a
case that is skipped, fails, runs out of memory or never reaches the timer is still in the
report with a status and a reason (a failed case that vanishes from a report hides the failure).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

STATUSES = ("ok", "mismatch", "unsupported", "error", "oom", "skipped", "known_failure", "fixed_upstream")
# How bad each status is (higher is worse) and which ones are failures: the one declaration
# compare, history, the headline and the Markdown report read. ``known_failure``: the case
# failed as a known upstream bug (or a model's declared pitfall) says it does, not a failure of
# this run, yet worse than ok (``ok -> known_failure`` under an upgrade is a regression, and a
# known failure that turns into another error is too); ``fixed_upstream``: the case passed
# although an entry expected it to fail, as good as ok (its metrics count like ok's).
SEVERITY = {"ok": 0, "fixed_upstream": 0, "skipped": 1, "unsupported": 2, "known_failure": 2.5, "oom": 3,
            "mismatch": 4, "error": 5}
FAILURES = ("error", "mismatch", "oom")
PASSED = ("ok", "fixed_upstream")


def passed(status) -> bool:
    """Whether a row's status means the case ran and its checks held (its metrics count)."""
    return status in PASSED

# The version of results.json's shape (``bench_run.schema``). 1: files written before the
# field existed; 2: plain checks get rows (``check``), rows carry ``foreign_cpu_share``, timed
# rows their budget (``rounds_planned``, ``warmup_rounds``); 3: generation's ``attention``,
# ``kv_cache_bytes_per_token``, ``first_diff_pos`` and sharded's ``checkpointing`` and strategy
# ``fsdp`` (were ``attn``, ``kv_bytes_per_token``, ``first_diff_position``, ``checkpoint``,
# ``fsdp2``). Readers upgrade older files on
# read (``bench.report.io.upgrade``) and refuse newer ones: asv versions its results files the
# same way (``api_version``, upgraded on load).
RESULTS_SCHEMA = 3

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
    "trainer": ("model", "precision", "batch_size", "grad_accum", "compile", "optim", "strategy", "checkpointing",
                "status", "reason", "samples_per_s", "tokens_per_s", "step_ms_p50", "step_ms_p95", "warmup_s",
                "train_runtime_s", "loss_first", "loss_last", "eval_accuracy", "time_to_accuracy_s", "mfu_pct"),
    "sharded": ("model", "strategy", "world_size", "checkpointing", "mp", "device", "status", "reason", "step_ms_p50",
                "tokens_per_s", "loss_max_abs_diff", "param_max_abs_diff", "update_rel_err_max", "grad_max_abs_diff",
                "param_bytes_per_rank", "optimizer_bytes_per_rank", "sharded_fraction", "step_peak_bytes",
                "step_peak_fraction", "step_time_vs_no_checkpoint", "comm_share_est", "peak_rss_mib_max_rank"),
    "generation": ("model", "mode", "cache", "attention", "device", "dtype", "batch_size", "prompt_len", "new_tokens",
                   "status", "reason", "token_parity", "first_diff_pos", "ttft_ms", "decode_ms_p50", "decode_ms_p95",
                   "decode_tokens_per_s", "tokens_per_s", "kv_cache_bytes_per_token", "kv_cache_bytes_formula",
                   "peak_mem_mib", "build_s", "recompiles", "sdpa_kernel"),
}


@dataclasses.dataclass(frozen=True)
class Metric:
    """A numeric column that ``compare`` and ``history`` judge.

    kind: ``timing`` (the benchmark's raw samples back it: the per-run statistic is their
    median), ``value`` (one number per run), ``derived`` (computed from the timing column
    of the same row, e.g. samples/s: shown, judged through that column, never counted
    twice), ``exact`` (deterministic: any change toward worse counts), ``counted`` (a count
    that repeats within a measured band ``noise``, relative: instructions under callgrind;
    judged from one run a side).
    threshold: the relative change that matters (0.10 = 10 %); smaller changes are "same"
    however significant. For ``exact`` metrics it is an absolute step.
    """

    unit: str
    better: str  # "lower" or "higher"
    kind: str = "value"
    threshold: float = 0.10
    doc: str = ""
    noise: float = 0.0  # ``counted``: the measured relative spread of repeated counts (A/A)

    @property
    def moved_by_load(self) -> bool:
        """Whether other processes on the machine can move it: not a deterministic count
        (``exact``) nor a count under callgrind (``counted``)."""
        return self.kind not in ("exact", "counted")


# Instructions per call under callgrind (bench.core.callgrind). The threshold is PyTorch's own
# for its instruction-count gates (benchmarks/dynamo/pr_time_benchmarks: +/-1.5 %); the noise
# band is the A/A spread measured here across processes and runs (README, "Instruction counts").
INSTRUCTIONS_NOISE = 0.005
_INSTRUCTIONS = {
    "instructions": Metric("instructions", "lower", "counted", 0.015,
                           "instructions per call under callgrind, one intra-op thread, loop subtracted",
                           noise=INSTRUCTIONS_NOISE),
}

def _twin(column: str) -> dict[str, Metric]:
    """The normalised twin of a timing column: its value over the torch-independent reference
    timed interleaved with it (``bench.core.reference``), judged as a metric of its own."""
    return {f"{column}_norm": Metric("x reference", "lower", "value", 0.10,
                                     f"{column} / the reference timed interleaved with it (machine state cancelled)")}


# peak_mem_mib (the contract's column) repeats one of these per device: judged through them.
_COMMON = {
    "peak_rss_mib": Metric("MiB", "lower", "value", 0.25,
                           "peak resident set of the whole process (CPU rows): mostly libraries, so coarse"),
    "cuda_peak_allocated_mib": Metric("MiB", "lower", "value", 0.05, "peak bytes held by tensors (CUDA rows)"),
    "cuda_peak_reserved_mib": Metric("MiB", "lower", "value", 0.10, "peak CUDA caching-allocator pool"),
}
# Every judged column of each suite, with its unit and which way is better: the one
# declaration compare, history and the README's tables read.
METRICS: dict[str, dict[str, Metric]] = {
    "autograd_ops": {
        "fwd_bwd_median_ms": Metric("ms", "lower", "timing", 0.10, "custom op forward+backward, median"),
        **_twin("fwd_bwd_median_ms"),
        "speedup_vs_native": Metric("x", "higher", "value", 0.10, "native composite time / op time, interleaved"),
        **_INSTRUCTIONS,
        "native_instructions": Metric("instructions", "lower", "counted", 0.015,
                                      "the native composite's instructions per call under callgrind",
                                      noise=INSTRUCTIONS_NOISE),
    },
    "graph_modes": {
        "median_ms": Metric("ms", "lower", "timing", 0.10, "one call of the mode's graph, median"),
        **_twin("median_ms"),
        "speedup_vs_eager": Metric("x", "higher", "value", 0.10, "eager time / mode time, interleaved"),
        "build_s": Metric("s", "lower", "value", 0.50, "build time (compile: first call); cache-dependent"),
        "graph_breaks": Metric("count", "lower", "exact", 0.0, "torch._dynamo graph breaks"),
        **_INSTRUCTIONS,
        "recompiles": Metric("count", "lower", "exact", 0.0, "frames compiled again for the probe inputs"),
        **_COMMON,
    },
    "devices": {
        "median_ms": Metric("ms", "lower", "timing", 0.10, "one step (inference or train), median"),
        **_twin("median_ms"),
        "samples_per_s": Metric("samples/s", "higher", "derived", doc="batch size / median step time"),
        "tokens_per_s": Metric("tokens/s", "higher", "derived", doc="non-padding tokens / median step time"),
        "tflops": Metric("TFLOP/s", "higher", "derived", doc="counted FLOPs / median step time"),
        "pct_of_peak": Metric("%", "higher", "derived", doc="tflops / measured GEMM roof"),
        "pct_of_vendor_peak": Metric("%", "higher", "derived", doc="tflops / vendor dense peak"),
        **_INSTRUCTIONS,
        **_COMMON,
    },
    "ddp": {
        "step_ms_p50": Metric("ms", "lower", "timing", 0.10, "training step, slowest rank, median"),
        "samples_per_s": Metric("samples/s", "higher", "derived", doc="global samples / summed step time"),
        "scaling_efficiency": Metric("ratio", "higher", "value", 0.15,
                                     "samples/s / (world size x no-DDP samples/s on the same device)"),
        "comm_share": Metric("fraction", "lower", "value", 0.25,
                             "ESTIMATE, not a trace: 1 - no_sync step time / synced step time"),
    },
    "trainer": {
        "step_ms_p50": Metric("ms", "lower", "timing", 0.10, "optimizer step, steady state, median"),
        "samples_per_s": Metric("samples/s", "higher", "derived", doc="steady samples / steady time"),
        "tokens_per_s": Metric("tokens/s", "higher", "derived", doc="non-padding tokens of all ranks / time"),
        "mfu_pct": Metric("%", "higher", "derived", doc="achieved FLOP/s / measured roof of all devices used"),
        "warmup_s": Metric("s", "lower", "value", 0.50, "first steps (compilation, allocator warm-up)"),
        "loss_last": Metric("loss", "lower", "value", 0.25, "training loss at the last step"),
        "eval_accuracy": Metric("accuracy", "higher", "exact", 0.02, "accuracy on the held-out split"),
        "time_to_accuracy_s": Metric("s", "lower", "value", 0.50, "training time to the target accuracy"),
    },
    "sharded": {
        "step_ms_p50": Metric("ms", "lower", "timing", 0.10, "training step, slowest rank, median"),
        "tokens_per_s": Metric("tokens/s", "higher", "derived", doc="global batch tokens / mean steady step"),
        "param_bytes_per_rank": Metric("bytes", "lower", "exact", 0.0, "parameter bytes one rank holds"),
        "grad_bytes_per_rank": Metric("bytes", "lower", "exact", 0.0, "gradient bytes one rank holds"),
        "optimizer_bytes_per_rank": Metric("bytes", "lower", "exact", 0.0,
                                           "optimizer state bytes one rank holds (SGD momentum)"),
        "step_peak_bytes": Metric("bytes", "lower", "value", 0.10, "peak allocator bytes of one forward + "
                                  "backward above its start (profiler memory events) of the unwrapped model "
                                  "on rank 0's shard of the batch, with the row's checkpointing"),
        "step_time_vs_no_checkpoint": Metric("ratio", "lower", "value", 0.25,
                                             "checkpointed step / plain step, interleaved medians (in-process rows)"),
        "comm_share_est": Metric("fraction", "lower", "value", 0.25, "ESTIMATE, not a trace: 1 - rank 0's "
                                 "unwrapped step on its shard / the sharded step of the slowest rank"),
        "peak_rss_mib_max_rank": Metric("MiB", "lower", "value", 0.25, "peak RSS of the largest rank (CPU)"),
    },
    "generation": {
        "decode_ms_p50": Metric("ms", "lower", "timing", 0.10, "one decode step (one token per sequence), "
                                "steady state (first 2 steps left out), median over calls"),
        **_twin("decode_ms_p50"),
        "decode_ms_p95": Metric("ms", "lower", "value", 0.25, "one decode step, 95th percentile"),
        "ttft_ms": Metric("ms", "lower", "value", 0.15, "time to first token (prefill), median over calls"),
        "decode_tokens_per_s": Metric("tokens/s", "higher", "derived", doc="batch size / median decode step"),
        "tokens_per_s": Metric("tokens/s", "higher", "value", 0.15,
                               "generated tokens of the batch / median generate() time (prefill included)"),
        "kv_cache_bytes_per_token": Metric("bytes", "lower", "exact", 0.0,
                                     "KV cache bytes per position per sequence (static: positions allocated)"),
        "build_s": Metric("s", "lower", "value", 0.50, "compile / export time, first call included"),
        "recompiles": Metric("count", "lower", "exact", 0.0, "frames compiled again for a shorter prompt"),
        "request_ms_p50": Metric("ms", "lower", "value", 0.15, "continuous batching: a request's latency, "
                                 "creation to last token, median"),
        "request_ms_p95": Metric("ms", "lower", "value", 0.25, "continuous batching: request latency, p95"),
        **_COMMON,
    },
}
# A plain pytest-benchmark entry (no bench row): judged by its median.
TIMING_OTHER = Metric("ms", "lower", "timing", 0.10, "pytest-benchmark median (a benchmark without bench row)")


def declared_metrics(suite: str | None) -> dict[str, Metric]:
    """The judged metrics of a suite's rows (suite ``other``: a plain benchmark's median)."""
    return {"median_ms": TIMING_OTHER} if suite in (None, "other") else METRICS.get(suite, {})


def metric_of(suite: str | None, name: str) -> Metric:
    return declared_metrics(suite).get(name) or TIMING_OTHER


# Error columns: growth beyond DRIFT_FACTOR x (and above DRIFT_FLOOR) is reported as numeric
# drift even while inside tolerance: a warning, not a regression.
ERROR_COLUMNS = ("max_abs_err", "rel_err_vs_fp64", "grad_max_abs_diff", "param_max_abs_diff_across_ranks")
DRIFT_FACTOR = 10.0
DRIFT_FLOOR = 1e-7


# Physical bounds: a value beyond one cannot be true (more than a roof's or the vendor's peak,
# a weak-scaling efficiency above ~1.1 where cache effects end). It says the timing behind it
# is wrong (a baseline timed while the machine was busy, a roof measured on a slower kernel):
# the row names it (``implausible``) and the headline never shows it as a best figure.
PHYSICAL_BOUNDS = {"pct_of_peak": 100.0, "pct_of_vendor_peak": 100.0, "mfu_pct": 100.0,
                   "scaling_efficiency": 1.1, "scaling_efficiency_vs_ddp1": 1.1}


def add_reference_twins(row: dict) -> None:
    """``X_norm = X / reference_ms`` for each declared ``*_norm`` metric of the row's suite whose
    timing column ``X`` and the interleaved reference (``bench.core.reference``) are both there."""
    ref = row.get("reference_ms")
    if not isinstance(ref, (int, float)) or not ref > 0:
        return
    for name in declared_metrics(row.get("suite")):
        value = row.get(name.removesuffix("_norm"))
        if name.endswith("_norm") and isinstance(value, (int, float)) and value == value:
            row[name] = value / ref


def implausible(row: dict) -> str:
    """The values of ``row`` beyond their physical bound, as text ("" when none)."""
    out = []
    for col, bound in PHYSICAL_BOUNDS.items():
        value = row.get(col)
        if isinstance(value, (int, float)) and value == value and value > bound:
            out.append(f"{col} {value:.3g} > {bound:g}")
    return "; ".join(out)


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
        self.expectation = None  # a status the case declares it is built to show (bench.core.expectations)

    def expect(self, expectation) -> None:
        """Declare how this case is expected to end (a model built to show a pitfall): the
        plugin judges the outcome against it as it judges the known-failure manifest's entries."""
        self.expectation = expectation

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
        add_reference_twins(self)
        beyond = implausible(self)
        if beyond:
            self["implausible"] = beyond + " (impossible: the timing behind it is suspect)"
        if self["status"] not in (None, "ok"):
            return
        if outcome == "passed":
            self["status"], self["reason"] = "ok", None
        elif outcome == "skipped":
            self["status"], self["reason"] = "skipped", message or "skipped"
        else:
            self["status"], self["reason"] = "error", message or "test failed"
