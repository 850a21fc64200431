"""Statistics of the verdict: is a change between two sets of runs real?

The unit of replication is the run. Rounds inside one run share that run's machine state
(other processes, frequency, cache and memory placement), so a test on rounds calls a
shift between two runs "significant" however often the unchanged code shows it. Here:

- each run contributes one statistic per case and metric (the median of its rounds);
- with at least ``MIN_RUNS`` runs a side, Welch's t-test on the logarithms of the run
  statistics (pyperf's ``is_significant`` tests run values with Student's t the same way;
  logs make a ratio's spread symmetric) gives a p-value;
- the p-values of one comparison (hundreds of metrics) are adjusted together by
  Benjamini-Hochberg, so the false-discovery rate of the family stays at ``alpha``;
- a change is a regression only when it is beyond the metric's practical threshold *and*
  significant after adjustment.

With fewer runs the between-run spread is unknown: a change is reported as "unsure" unless
it exceeds ``SINGLE_RUN_FLOOR`` (between fresh processes of unchanged code on a 2-core CI
machine one small case ranged over 2.4x, and in the planted-slowdown experiment one run a side
called a 2.2x difference of untouched code; see the README) and the rounds of the two runs
also differ (Mann-Whitney U on raw samples).
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence

MIN_RUNS = 3
SINGLE_RUN_FLOOR = 2.5


def welch_log_p(base: Sequence[float], new: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test on log values; None when it cannot be computed."""
    from scipy.stats import ttest_ind

    if base and new and (all(v == 0 for v in base) != all(v == 0 for v in new)):
        return 0.0  # one side is all zeros, the other is not: as different as it gets
    a = [math.log(v) for v in base if v and v > 0]
    b = [math.log(v) for v in new if v and v > 0]
    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return 0.0 if statistics.fmean(a) != statistics.fmean(b) else 1.0
    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def mann_whitney_p(base: Sequence[float], new: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value on raw samples (at least 3 a side), else None."""
    from scipy.stats import mannwhitneyu

    if len(base) < 3 or len(new) < 3:
        return None
    return float(mannwhitneyu(list(base), list(new), alternative="two-sided").pvalue)


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """BH-adjusted p-values (q-values), None kept in place."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(indexed)
    out: list[float | None] = [None] * len(pvalues)
    running = 1.0
    for rank in range(m, 0, -1):
        p, i = indexed[rank - 1]
        running = min(running, p * m / rank)
        out[i] = running
    return out


def ratio_of_medians(base: Sequence[float], new: Sequence[float]) -> float | None:
    if not base or not new:
        return None
    b = statistics.median(base)
    return statistics.median(new) / b if b else None


def worse_ratio(ratio: float, better: str) -> float:
    """The ratio expressed so that > 1 always means worse (time up, throughput down)."""
    return ratio if better == "lower" else (1 / ratio if ratio else math.inf)
