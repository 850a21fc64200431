"""Device-synchronised timing.

pytest-benchmark reads the host clock. On CUDA a kernel launch returns before the kernel
has run, so every callable handed to the timer here synchronises *inside* the timed call
(without it the host clock measures kernel launches); warm-up runs happen before the timer
starts, so compilation, CUDA initialisation and autotuning are not counted as speed. A case
that records into a row has the torch-independent reference timed between its rounds
(``bench.core.reference``).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.core.hardware import synchronize
from bench.core.reference import interleave, record_reference, reference_after
from bench.core.samples import percentile, summarize_ms  # noqa: F401  (the timing vocabulary)


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
    """How long one case is timed: sized by time, not by a fixed count of rounds (as
    ``torch.utils.benchmark.Timer.blocked_autorange`` and pytest-benchmark's ``max_time`` do).

    Warm-up: at least ``warmup_rounds`` calls, then more while ``warmup_s`` lasts. Timed
    rounds: ``measure_s`` divided by one call's time (the median of the last warm-up calls),
    never fewer than ``min_rounds`` (a run's median needs a few) nor more than ``max_rounds``.
    A slow call gets few rounds, a fast one many. ``Budget.fixed(n)`` times exactly n rounds.
    """

    measure_s: float = 2.0
    min_rounds: int = 5
    max_rounds: int = 100
    warmup_s: float = 0.5
    warmup_rounds: int = 1

    def __post_init__(self):
        if self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise ValueError(f"Budget: need 1 <= min_rounds <= max_rounds, got {self.min_rounds}, {self.max_rounds}")
        if self.measure_s < 0 or self.warmup_s < 0 or self.warmup_rounds < 0:
            raise ValueError("Budget: measure_s, warmup_s and warmup_rounds must not be negative")

    @classmethod
    def fixed(cls, rounds: int, warmup_rounds: int = 0) -> Budget:
        return cls(measure_s=0.0, min_rounds=rounds, max_rounds=rounds, warmup_s=0.0, warmup_rounds=warmup_rounds)

    @property
    def rounds(self) -> int:
        """The rounds of a call too slow for the time budget (what a fixed count would be)."""
        return self.min_rounds

    def rounds_for(self, call_s: float | None) -> int:
        if not call_s or call_s <= 0:
            return self.max_rounds if self.measure_s else self.min_rounds
        return max(self.min_rounds, min(self.max_rounds, math.ceil(self.measure_s / call_s)))

    def reduced(self, factor: float = 4.0, min_rounds: int = 3) -> Budget:
        """A smaller budget (emulated low precision: its speed says little, its cost is large)."""
        return dataclasses.replace(self, measure_s=self.measure_s / factor, warmup_s=self.warmup_s / factor,
                                   min_rounds=min(min_rounds, self.min_rounds),
                                   max_rounds=max(min(min_rounds, self.min_rounds), self.max_rounds // 2))

    def estimate_s(self, call_s: float = 0.0) -> float:
        """About how long a case takes: warm-up plus measurement (a call of ``call_s``)."""
        return max(self.warmup_s, self.warmup_rounds * call_s) + max(self.measure_s, self.min_rounds * call_s)


def budget_for(budget: Budget, device: str, dtype: str, row: dict | None = None) -> Budget:
    """The budget of one case: the profile's, at its fewest rounds when the run's time plan says
    so (the row's ``plan``), reduced for low precision that this CPU only emulates (its speed says
    little and one call can take seconds); the row says so."""
    from bench.core.hardware import probe

    if row is not None and row.get("plan") in ("min_rounds", "shrunk"):  # the run's time plan (bench.core.plan)
        budget = dataclasses.replace(budget, measure_s=0.0, warmup_s=min(budget.warmup_s, 0.1))
    note = probe().cpu_emulation_note(str(device), dtype)
    if note is None:
        return budget
    if row is not None:
        row["precision_note"] = note
    return budget.reduced()


def warm_up_timed(calls: list[Callable[[], Any]], budget: Budget, record: dict | None = None) -> float | None:
    """Warm up synchronised ``calls`` (called in turn each round) within ``budget``; returns
    one round's time in seconds (median of the last five warm-up rounds), None without any
    warm-up round. ``record`` gets the warm-up's rounds and seconds."""
    t0 = time.perf_counter()
    times: list[float] = []
    while len(times) < budget.warmup_rounds or (time.perf_counter() - t0 < budget.warmup_s and len(times) < 10_000):
        t = time.perf_counter()
        for call in calls:
            call()
        times.append(time.perf_counter() - t)
    if record is not None:
        record.update(warmup_rounds=len(times), warmup_s=round(time.perf_counter() - t0, 4))
    return statistics.median(times[-5:]) if times else None


def _plan(calls: list[Callable[[], Any]], budget: Budget, record: dict | None) -> int:
    """Warm up, then the number of timed rounds the budget affords; recorded in ``record``."""
    rec: dict = {}
    call_s = warm_up_timed(calls, budget, rec)
    rounds = budget.rounds_for(call_s)
    rec.update(budget_s=budget.measure_s, rounds_planned=rounds,
               call_ms_estimate=round(call_s * 1e3, 4) if call_s else None)
    if call_s and rounds * call_s > 1.5 * max(budget.measure_s, 1e-9) and budget.measure_s:
        rec["budget_note"] = (f"one call takes {call_s:.3g} s: {rounds} rounds (the minimum) take "
                              f"{rounds * call_s:.0f} s, beyond this profile's {budget.measure_s:g} s per case")
    if record is not None:
        record.update(rec)
    return rounds


def time_callable(fn: Callable[[], Any], device: str | torch.device, budget: Budget,
                  min_warmup_s: float = 0.0, record: dict | None = None) -> list[float]:
    """Time ``fn`` outside pytest-benchmark: returns per-call seconds (synchronised)."""
    call = synchronized(fn, device)
    if min_warmup_s:
        warm_up(call, device, 0, min_warmup_s)
    rounds = _plan([call], budget, record)
    tick = interleave(record)
    samples = []
    for _ in range(rounds):
        tick()
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    record_reference(tick, record)
    return samples


def cuda_event_times(fn: Callable[[], Any], device: str | torch.device, budget: Budget) -> list[float]:
    """Per-call seconds measured by CUDA events around each call (GPU-side clock)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"CUDA events need a CUDA device, got {device}")
    rounds = _plan([synchronized(fn, dev)], budget, None)
    samples = []
    with torch.cuda.device(dev):
        for _ in range(rounds):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
    return samples


def run_benchmark(benchmark, fn: Callable[[], Any], device: str | torch.device, budget: Budget,
                  record: dict | None = None) -> list[float]:
    """Time ``fn`` with pytest-benchmark's fixture, synchronised, warm-up excluded, rounds
    sized by ``budget`` (recorded in ``record``). Returns the raw per-call seconds (empty
    when benchmarks are disabled). Without a fixture (a scenario run from Python) the same
    rounds are timed by :func:`time_callable`."""
    if benchmark is None:
        return time_callable(fn, device, budget, record=record)
    call = synchronized(fn, device)
    if getattr(benchmark, "disabled", False):
        benchmark.pedantic(call, rounds=1, iterations=1)
        return []
    rounds = _plan([call], budget, record)
    setup = interleave(record)
    benchmark.pedantic(call, setup=setup, rounds=rounds, warmup_rounds=0, iterations=1)
    record_reference(setup, record)
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
        # synchronised calls, then the median over blocks
        ours.append(statistics.fmean(time_callable(fn, device, Budget.fixed(per_block))))
        # Timer synchronises the *current* CUDA device around its ``number`` calls: make
        # ``device`` current, or on cuda:1 and above it would time kernel launches.
        # Like with like: Timer synchronises once around ``number`` calls, so number=per_block
        # would overlap the launches of a launch-bound CUDA case that the suite's synchronised
        # per-call clock does not; one call per measurement on both sides, then the block mean.
        with current_device(device):
            theirs.append(statistics.fmean(timer.timeit(number=1).median for _ in range(per_block)))
    suite_ms, timer_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    return {"suite_median_ms": suite_ms, "timer_median_ms": timer_ms, "ratio": suite_ms / timer_ms}


def record_step_samples(benchmark, samples_s: list[float]) -> None:
    """Replace the samples of a ``benchmark.pedantic(run, rounds=1)`` call (one whole run:
    start-up, loading, warm-up) with the run's own steady-state per-step times, so the
    report and ``compare`` see step statistics (as docs/methods.md says)."""
    from pytest_benchmark.stats import Stats

    meta = getattr(benchmark, "stats", None)
    if meta is None or not samples_s:
        return
    fresh = Stats()
    for s in samples_s:
        fresh.update(s)
    meta.stats = fresh


def run_benchmark_against(benchmark, fn: Callable[[], Any], baseline: Callable[[], Any],
                          device: str | torch.device, budget: Budget,
                          record: dict | None = None) -> tuple[list[float], list[float]]:
    """Time ``fn`` with pytest-benchmark and ``baseline`` with the same clock, one baseline
    call before every round (A B A B ...): both see the same machine state and noise, so
    their ratio is not skewed by the process's history (allocator and cache state left by
    earlier cases). The budget covers both calls of a round. Returns both sample lists."""
    if benchmark is None:
        return _interleaved_plain(fn, baseline, device, budget, record)
    base = synchronized(baseline, device)
    base_samples: list[float] = []

    def setup():
        t0 = time.perf_counter()
        base()
        base_samples.append(time.perf_counter() - t0)

    call = synchronized(fn, device)
    if getattr(benchmark, "disabled", False):
        benchmark.pedantic(call, rounds=1, iterations=1)
        return [], []
    rounds = _plan([base, call], budget, record)
    benchmark.pedantic(call, setup=setup, rounds=rounds, warmup_rounds=0, iterations=1)
    reference_after(record)  # not between the pair: it would cool the cache before one side only
    stats = getattr(benchmark, "stats", None)
    samples = list(stats.stats.data) if stats is not None else []
    # pytest-benchmark calls setup once more for --benchmark-cprofile: keep the paired rounds
    return samples, base_samples[:len(samples)] if samples else []


def _interleaved_plain(fn, baseline, device, budget: Budget, record=None) -> tuple[list[float], list[float]]:
    """run_benchmark_against without pytest-benchmark: baseline, fn, baseline, fn, ..."""
    call, base = synchronized(fn, device), synchronized(baseline, device)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(_plan([base, call], budget, record)):
        for f, out in ((base, theirs), (call, ours)):
            t0 = time.perf_counter()
            f()
            out.append(time.perf_counter() - t0)
    reference_after(record)
    return ours, theirs
