"""Statistics of the verdict: is a change between two sets of runs shown, and is its absence?

The unit of replication is the run. Rounds inside one run share that run's machine state
(other processes, frequency, cache and memory placement), so a test on rounds calls a
shift between two runs "significant" however often the unchanged code shows it. Each run
contributes one statistic per case and metric (the median of its rounds), and everything
below works on the logarithms of those run statistics (a ratio's spread is symmetric in
logs, and a ratio of geometric means is a difference of log means).

Four verdicts, each with the evidence it needs:

- ``regression`` / ``improvement``: Welch's t-test (two-sided) on the log run statistics is
  significant after Benjamini-Hochberg over the comparison *and* the point estimate of the
  ratio lies beyond the metric's threshold. The threshold applies to the point estimate,
  not to the interval's near end: requiring the whole interval beyond the threshold (a
  minimum-effect test) would leave a true 1.2x slowdown "unsure" at any run count a CI job
  can afford; asv and pyperf judge the point estimate the same way.
- ``same``: equivalence shown by two one-sided tests (TOST; Schuirmann 1987, J Pharmacokinet
  Biopharm 15:657) against +/- log(1 + threshold), i.e. the (1 - 2 alpha) interval of the
  ratio lies inside the threshold band; the TOST p-values are adjusted by Benjamini-Hochberg
  too, so "same" claims keep their own false-discovery rate.
- ``unsure``: everything else, with the runs a side that would likely decide it.

With one run on a side the between-run spread of that side is unknown; the other side's
spread stands in for it when it has two or more runs (equal variances assumed: Student's
pooled interval). With one run a side nothing is known about run-to-run noise: no ``same``
is possible; a change beyond ``SINGLE_RUN_FLOOR`` whose rounds also differ (Mann-Whitney U)
is still called, since two fresh processes of unchanged code here never differed by that
much (see docs/measurements.md).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

MIN_RUNS = 3            # runs a side `ab` recommends: the fewest at which Welch's df is usable
# One run a side: untouched timings differed by up to 3.75x between two single runs here (3,264
# pairs of runs of the planted-slowdown experiments, rounds not overlapping), so only a change
# beyond 5x is called from one run a side; anything smaller is unsure.
SINGLE_RUN_FLOOR = 5.0
POWER_Z = 0.8416        # z of 80 % power, for the runs-needed estimate
MAX_RUNS_NEEDED = 200   # beyond this "runs needed" is reported as out of reach


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the runs say about one metric's ratio new / base (geometric means of run statistics)."""

    ratio: float
    ci_low: float | None      # (1 - 2 alpha) interval of the ratio; None without a spread
    ci_high: float | None
    p_diff: float | None      # two-sided p of "no change"
    p_same: float | None      # TOST p of "outside the band"
    sd_log: float | None      # between-run standard deviation of log values (pooled)
    df: float | None
    test: str


def _t():
    from scipy.stats import t

    return t


def log_values(values: Sequence[float]) -> list[float]:
    return [math.log(v) for v in values if v is not None and v > 0 and math.isfinite(v)]


def evidence(base: Sequence[float], new: Sequence[float], threshold: float, alpha: float = 0.05) -> Evidence | None:
    """Interval and tests for the ratio of geometric means; None when a side has no positive
    value. A spread from an earlier experiment never stands in for this one's: two
    experiments on the same machine disagreed on 10-16 % effects here (see docs/measurements.md)."""
    a, b = log_values(base), log_values(new)
    if not a or not b:
        return None
    d = statistics.fmean(b) - statistics.fmean(a)
    na, nb = len(a), len(b)
    va = statistics.variance(a) if na > 1 else None
    vb = statistics.variance(b) if nb > 1 else None
    if va is not None and vb is not None:
        se = math.sqrt(va / na + vb / nb)
        num = (va / na + vb / nb) ** 2
        den = ((va / na) ** 2 / (na - 1)) + ((vb / nb) ** 2 / (nb - 1))
        df = num / den if den > 0 else float(na + nb - 2)
        sd = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
        test = "welch-t(log run medians)"
    elif va is not None or vb is not None:
        var = va if va is not None else vb
        sd, df = math.sqrt(var), float((na if va is not None else nb) - 1)
        se = sd * math.sqrt(1 / na + 1 / nb)
        test = "t(log run medians, spread of the side with runs)"
    else:
        return Evidence(math.exp(d), None, None, None, None, None, None, "none (one run a side)")
    margin = math.log(1 + threshold)
    if se == 0 and (na < 2 or nb < 2):  # one identical pair of runs is no evidence of zero spread
        return Evidence(math.exp(d), None, None, None, None, None, None, "none (no spread measured)")
    if se == 0:  # identical runs on each side: the difference is known exactly
        inside = abs(d) < margin
        return Evidence(math.exp(d), math.exp(d), math.exp(d), 0.0 if d else 1.0, 0.0 if inside else 1.0, sd, df,
                        test)
    t = _t()
    crit = float(t.ppf(1 - alpha, df))
    p_diff = float(2 * t.sf(abs(d) / se, df))
    p_same = max(float(t.sf((d + margin) / se, df)), float(t.sf((margin - d) / se, df)))
    return Evidence(math.exp(d), math.exp(d - crit * se), math.exp(d + crit * se), p_diff, p_same, sd, df, test)


def runs_needed(ratio: float, sd_log: float | None, threshold: float, alpha: float = 0.05,
                more_than: int = 0) -> int | None:
    """Runs a side that would likely (80 % power) decide a metric whose true ratio is the one
    observed: its interval inside the band (``same``) when the ratio lies inside, its interval
    clear of the band edge when outside (so the point estimate stays beyond the threshold and
    the difference is significant). Student's t at 2n - 2 degrees of freedom, one-sided at
    ``alpha``; the Benjamini-Hochberg step over many metrics is not in it, so read it as a
    lower bound. At least ``more_than`` + 1 (the runs that left it undecided). None when the
    spread is unknown or the ratio sits on the threshold (no run count decides it)."""
    if sd_log is None or ratio is None or ratio <= 0:
        return None
    gap = abs(math.log(1 + threshold) - abs(math.log(ratio)))
    if gap <= 1e-3:
        return None
    if sd_log == 0:
        return max(2, more_than + 1)
    t = _t()
    for n in range(max(2, more_than + 1), MAX_RUNS_NEEDED + 1):
        if (float(t.ppf(1 - alpha, 2 * n - 2)) + POWER_Z) * sd_log * math.sqrt(2 / n) <= gap:
            return n
    return None


def _z(alpha: float, two_sided: bool = False) -> float:
    if alpha == 0.05:
        return 1.959964 if two_sided else 1.644854
    from scipy.stats import norm

    return float(norm.ppf(1 - (alpha / 2 if two_sided else alpha)))


def detectable_change(sd_log: float, runs: int, alpha: float = 0.05) -> float:
    """The smallest ratio a two-sided test at ``alpha`` finds with 80 % power at ``runs`` a
    side, for a between-run spread ``sd_log`` (normal approximation)."""
    return math.exp((_z(alpha, True) + POWER_Z) * sd_log * math.sqrt(2 / runs))


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
