"""Step detection on one series of per-run values: pure functions, no files, no verdicts.

``change_points`` runs ruptures' PELT on the logs of the values (a step is then a ratio) with
a penalty scaled by the series' run-to-run noise (``noise_of``: from successive differences,
robust to the steps themselves); ``level_steps`` is the binary segmentation for a series too
short or too flat for PELT. A step counts only beyond the threshold with ``MIN_SEGMENT`` runs
on each side. ``bench.report.history`` reads the runs and applies these per case and metric.
"""
from __future__ import annotations

import math
import statistics

MIN_SEGMENT = 2     # runs on each side of a change
PENALTY = 4.0       # x sigma^2 x log(n): tuned on the synthetic validation (docs/measurements.md, "history validation")
NOISE_FLOOR = 0.005  # log-scale noise never taken below 0.5 %


def noise_of(logs: list[float]) -> float:
    """Run-to-run noise of a log series: the median absolute successive difference scaled to a
    standard deviation (MAD / 0.6745, and differences of two runs carry sqrt 2 of it)."""
    diffs = [b - a for a, b in zip(logs, logs[1:])]
    between = statistics.median([abs(d) for d in diffs]) / (0.6745 * math.sqrt(2)) if diffs else 0.0
    return max(between, NOISE_FLOOR)


def change_points(values: list[float], threshold: float = 0.10) -> list[dict]:
    """Steps in a positive series: [{"index", "before", "after", "ratio"}], ``index`` the
    first run of the new level."""
    import numpy as np
    import ruptures as rpt

    n = len(values)
    if n < 2 * MIN_SEGMENT or any(v <= 0 for v in values):
        return []
    logs = [math.log(v) for v in values]
    sigma = noise_of(logs)
    algo = rpt.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(np.array(logs).reshape(-1, 1))
    ends = algo.predict(pen=PENALTY * sigma**2 * math.log(n))
    starts = [0] + ends[:-1]
    out = []
    for i in range(1, len(starts)):
        before = statistics.median(values[starts[i - 1]:starts[i]])
        after = statistics.median(values[starts[i]:ends[i]])
        ratio = after / before
        # the new level must hold: each of the first MIN_SEGMENT runs after the step is beyond
        # the threshold on the same side (one outlier next to a normal run is not a level)
        first = values[starts[i]:starts[i] + MIN_SEGMENT]
        held = all((v / before > 1 + threshold) if ratio > 1 else (v / before < 1 / (1 + threshold)) for v in first)
        if held and abs(math.log(ratio)) > math.log(1 + threshold):
            out.append({"index": starts[i], "before": before, "after": after, "ratio": ratio})
    return out


def level_steps(values: list[float], step: float) -> list[dict]:
    """Steps in a deterministic series (counts such as graph breaks, accuracies; from 0 too):
    binary segmentation where each split puts the series' values on the side of the level
    they are closest to with at most a quarter of them misplaced and each side mostly at
    its own level (so a new level that flickers, 0 0 1 0 1 1 1, is still one step), the levels
    (medians) differ by more than
    ``step``, and the split falls on the first run that shows the new level."""
    found: list[int] = []

    def split(lo: int, hi: int) -> None:
        best = None
        for i in range(lo + MIN_SEGMENT, hi - MIN_SEGMENT + 1):
            before, after = statistics.median(values[lo:i]), statistics.median(values[i:hi])
            if abs(after - before) <= step:
                continue
            mid = (before + after) / 2
            toward_after = (lambda v, mid=mid: v > mid) if after > before else (lambda v, mid=mid: v < mid)
            if not toward_after(values[i]):
                continue  # a split starts on a run that shows the new level
            wrong_before = sum(toward_after(v) for v in values[lo:i])
            wrong_after = sum(not toward_after(v) for v in values[i:hi])
            misplaced = wrong_before + wrong_after
            clear = 2 * wrong_before < i - lo and 2 * wrong_after < hi - i  # each side mostly its own level
            if clear and misplaced <= (hi - lo) // 4 and (best is None or misplaced < best[0]):
                best = (misplaced, i)
        if best is not None:
            found.append(best[1])
            split(lo, best[1])
            split(best[1], hi)

    split(0, len(values))
    bounds = [0, *sorted(found), len(values)]
    out = []
    for k in range(1, len(bounds) - 1):
        before = statistics.median(values[bounds[k - 1]:bounds[k]])
        after = statistics.median(values[bounds[k]:bounds[k + 1]])
        if abs(after - before) > step:
            out.append({"index": bounds[k], "before": before, "after": after,
                        "ratio": after / before if before else None})
    return out
