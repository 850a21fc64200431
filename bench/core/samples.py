"""Summaries of per-call times: percentiles and the median / p90 / p99 columns of a row."""
from __future__ import annotations

import statistics


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
