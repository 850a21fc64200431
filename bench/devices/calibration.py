"""The timing self-checks: the suite's clock against torch.utils.benchmark on one reference
case per device, and against CUDA events around a GEMM on CUDA devices. A failed self-check
means this machine's timings are not to be trusted: the row is not ``ok``."""
from __future__ import annotations

import torch

from bench.core.flops import count_flops
from bench.core.numerics import CALIBRATION_BAND, CUDA_EVENTS_BAND
from bench.core.timing import Budget, run_benchmark, summarize_ms
from bench.devices.scenario import metrics, prepare
from bench.registry import ModelSpec


def calibration(spec: ModelSpec, device: str, batch_size: int, benchmark, row, roofs, seq_len: int = 128) -> None:
    """The timing self-check: one reference forward timed by the suite's clock and by
    torch.utils.benchmark.Timer in alternating blocks; both medians and their ratio. A ratio
    outside CALIBRATION_BAND is confirmed by a second, twice as long measurement (noise on a
    busy machine passes it, a clock that measures something else does not) and then makes
    the row a ``mismatch``: this machine's timings are not to be trusted."""
    from bench.core.timing import interleaved_check

    case = prepare(spec, device, "fp32", "inference", batch_size, seq_len)
    row.check(case.check_reason is None, case.check_reason or "")
    lo, hi = CALIBRATION_BAND
    check = interleaved_check(case.step, device)
    attempts = [check["ratio"]]
    if not lo <= check["ratio"] <= hi:
        check = interleaved_check(case.step, device, blocks=16)
        attempts.append(check["ratio"])
    row.update(suite_median_ms=check["suite_median_ms"], timer_median_ms=check["timer_median_ms"],
               calibration_ratio=check["ratio"], calibration_attempts=len(attempts))
    flops = count_flops(case.step)
    samples = run_benchmark(benchmark, case.step, device, Budget.fixed(10, warmup_rounds=1), record=row)
    if samples:
        row.update(summarize_ms(samples))
        row.update(metrics(case, device, "fp32", row["median_ms"], flops, roofs))
    row.check(lo <= check["ratio"] <= hi,
              f"timing self-check failed: the suite's median is {check['ratio']:.3f}x torch.utils.benchmark's "
              f"(allowed {lo}-{hi}; ratios measured: {', '.join(f'{r:.3f}' for r in attempts)})")


def cuda_events_check(device: str, benchmark, row, roofs, n: int = 4096) -> None:
    from bench.core.timing import cuda_event_times

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def fn():
        return torch.mm(a, b)

    budget = Budget.fixed(30, warmup_rounds=5)
    samples = run_benchmark(benchmark, fn, device, budget, record=row)
    if not samples:
        return
    row.update(summarize_ms(samples))
    events_ms = summarize_ms(cuda_event_times(fn, device, budget))["median_ms"]
    ratio = row["median_ms"] / events_ms
    tflops = 2 * n**3 / (row["median_ms"] / 1e3) / 1e12
    row.update(events_median_ms=events_ms, calibration_ratio=ratio, tflops=tflops,
               pct_of_peak=100 * tflops / roofs.peak(device, "fp32")["tflops"])
    lo, hi = CUDA_EVENTS_BAND
    row.check(lo <= ratio <= hi, f"suite timing {row['median_ms']:.3f} ms vs CUDA events {events_ms:.3f} ms "
                                 f"(ratio {ratio:.3f}, allowed {lo}-{hi})")
