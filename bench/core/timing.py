"""Device-synchronised timing.

pytest-benchmark reads the host clock. On CUDA a kernel launch returns before the kernel
has run, so every callable handed to the timer here synchronises *inside* the timed call
(PITFALLS 1); warm-up runs happen before the timer starts (PITFALLS 2).
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable

import torch

from bench.core.hardware import synchronize


def current_device(device: str | torch.device):
    """A context that makes ``device`` the current CUDA device (nothing to do on CPU)."""
    import contextlib

    dev = torch.device(device)
    return torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()


def synchronized(fn: Callable[[], Any], device: str | torch.device) -> Callable[[], Any]:
    """``fn`` followed by a device sync, so host-clock timers see the work itself."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return fn

    def call():
        out = fn()
        torch.cuda.synchronize(dev)
        return out

    call.__name__ = getattr(fn, "__name__", "call")
    return call


def warm_up(fn: Callable[[], Any], device: str | torch.device, rounds: int, min_s: float = 0.0) -> None:
    """At least ``rounds`` calls and at least ``min_s`` seconds: some kernels (bf16 GEMMs on
    AMX CPUs, cuBLAS heuristics) stay slow for the first tens of calls."""
    t0 = time.perf_counter()
    done = 0
    while done < rounds or time.perf_counter() - t0 < min_s:
        fn()
        done += 1
        if min_s:
            synchronize(device)
    synchronize(device)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How many timed rounds a case gets; set by the profile."""

    warmup_rounds: int
    rounds: int


def time_callable(fn: Callable[[], Any], device: str | torch.device, budget: Budget,
                  min_warmup_s: float = 0.0) -> list[float]:
    """Time ``fn`` outside pytest-benchmark: returns per-call seconds (synchronised)."""
    call = synchronized(fn, device)
    warm_up(call, device, budget.warmup_rounds, min_warmup_s)
    samples = []
    for _ in range(budget.rounds):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def cuda_event_times(fn: Callable[[], Any], device: str | torch.device, budget: Budget) -> list[float]:
    """Per-call seconds measured by CUDA events around each call (GPU-side clock)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"CUDA events need a CUDA device, got {device}")
    warm_up(fn, dev, budget.warmup_rounds)
    samples = []
    with torch.cuda.device(dev):
        for _ in range(budget.rounds):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
    return samples


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not samples:
        raise ValueError("percentile of no samples")
    data = sorted(samples)
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summarize_ms(samples_s: list[float]) -> dict[str, float]:
    """median / p90 / p99 / mean / stddev in milliseconds from per-call seconds."""
    if not samples_s:
        return {}
    ms = [s * 1e3 for s in samples_s]
    return {
        "median_ms": statistics.median(ms),
        "p10_ms": percentile(ms, 10),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "stddev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "rounds": len(ms),
    }


def run_benchmark(benchmark, fn: Callable[[], Any], device: str | torch.device, budget: Budget) -> list[float]:
    """Time ``fn`` with pytest-benchmark's fixture, synchronised, warm-up excluded. Returns
    the raw per-call seconds (empty when benchmarks are disabled). Without a fixture (a
    scenario run from Python) the same rounds are timed by :func:`time_callable`."""
    if benchmark is None:
        return time_callable(fn, device, budget)
    call = synchronized(fn, device)
    benchmark.pedantic(call, rounds=budget.rounds, warmup_rounds=budget.warmup_rounds, iterations=1)
    stats = getattr(benchmark, "stats", None)
    return list(stats.stats.data) if stats is not None else []


def interleaved_check(fn: Callable[[], Any], device: str | torch.device, blocks: int = 8,
                      per_block: int = 5) -> dict[str, float]:
    """Time ``fn`` with the suite's clock and with ``torch.utils.benchmark.Timer`` in
    alternating blocks (A B A B ...), so machine noise hits both alike. Returns both medians
    (ms) and their ratio: a self-check of the suite's clock against PyTorch's."""
    import torch.utils.benchmark as tub

    call = synchronized(fn, device)
    warm_up(call, device, 3, min_s=0.5)
    timer = tub.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    ours, theirs = [], []
    for _ in range(blocks):
        # the same statistic on both sides: the mean call time of each block of per_block
        # calls, then the median over blocks (Timer.timeit reports a block's mean)
        ours.append(statistics.fmean(time_callable(fn, device, Budget(warmup_rounds=0, rounds=per_block))))
        # Timer synchronises the *current* CUDA device around its ``number`` calls: make
        # ``device`` current, or on cuda:1 and above it would time kernel launches.
        with current_device(device):
            theirs.append(timer.timeit(number=per_block).median)
    suite_ms, timer_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    return {"suite_median_ms": suite_ms, "timer_median_ms": timer_ms, "ratio": suite_ms / timer_ms}


def record_step_samples(benchmark, samples_s: list[float]) -> None:
    """Replace the samples of a ``benchmark.pedantic(run, rounds=1)`` call (one whole run:
    start-up, loading, warm-up) with the run's own steady-state per-step times, so the
    report and ``compare`` see step statistics (DESIGN.md, "Timing long runs")."""
    from pytest_benchmark.stats import Stats

    meta = getattr(benchmark, "stats", None)
    if meta is None or not samples_s:
        return
    fresh = Stats()
    for s in samples_s:
        fresh.update(s)
    meta.stats = fresh


def run_benchmark_against(benchmark, fn: Callable[[], Any], baseline: Callable[[], Any],
                          device: str | torch.device, budget: Budget) -> tuple[list[float], list[float]]:
    """Time ``fn`` with pytest-benchmark and ``baseline`` with the same clock, one baseline
    call before every round (A B A B ...): both see the same machine state and noise, so
    their ratio is not skewed by what ran before (PITFALLS 6). Returns both sample lists."""
    if benchmark is None:
        return _interleaved_plain(fn, baseline, device, budget)
    base = synchronized(baseline, device)
    base_samples: list[float] = []

    def setup():
        t0 = time.perf_counter()
        base()
        base_samples.append(time.perf_counter() - t0)

    call = synchronized(fn, device)
    benchmark.pedantic(call, setup=setup, rounds=budget.rounds, warmup_rounds=budget.warmup_rounds, iterations=1)
    stats = getattr(benchmark, "stats", None)
    samples = list(stats.stats.data) if stats is not None else []
    return samples, base_samples[budget.warmup_rounds:] if samples else []


def _interleaved_plain(fn, baseline, device, budget: Budget) -> tuple[list[float], list[float]]:
    """run_benchmark_against without pytest-benchmark: baseline, fn, baseline, fn, ..."""
    call, base = synchronized(fn, device), synchronized(baseline, device)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(budget.warmup_rounds + budget.rounds):
        for f, out in ((base, theirs), (call, ours)):
            t0 = time.perf_counter()
            f()
            if i >= budget.warmup_rounds:
                out.append(time.perf_counter() - t0)
    return ours, theirs
