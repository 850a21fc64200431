"""``python -m bench history``: trends and change points over every run.

Runs are grouped by profile and machine and ordered by their run id (its time). For every
case and declared metric (``bench.core.rows.METRICS``) the per-run values form a series in
which change points are found with ruptures' PELT (exact penalised segmentation; a
maintained library with a small C core, chosen over Apache Otava's E-Divisive, which is a
service-style tool with its own storage). The series is in logs, so a step is a ratio; the
penalty scales with the series' run-to-run noise (from successive differences, robust to the
steps themselves), so a noisy benchmark needs a larger step. The spread of the rounds inside
one run plays no part: each point is a run's median, whose noise is the between-run spread
(a run whose rounds spread 30 % can still have a median that moves 2 % between runs, and a
25 % step in it must be found). A step counts only when it also exceeds the metric's
threshold and at least ``MIN_SEGMENT`` runs stand on each side of it: one noisy night is
not a change. Status transitions (``ok`` for 20 nights, ``mismatch`` since) are changes too.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

from bench.core.rows import SEVERITY, declared_metrics
from bench.report.io import ResultsError
from bench.report.runs import (
    Run,
    environment_diff,
    load_run,
    metric_values,
    repro_command,
)

MIN_SEGMENT = 2     # runs on each side of a change
PENALTY = 4.0       # x sigma^2 x log(n): tuned on the synthetic validation (README table)
NOISE_FLOOR = 0.005  # log-scale noise never taken below 0.5 %


def find_runs(folders: list[str]) -> list[Run]:
    """Every results file under ``folders`` (history files, reports/<run>/results.json,
    nightly artifacts unpacked into folders), one per run id."""
    runs: dict[str, Run] = {}
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise ResultsError(f"{folder}: no such folder")
        paths = [root] if root.is_file() else sorted(root.rglob("*.json"))
        for path in paths:
            try:
                run = load_run(path)
            except ResultsError:
                continue  # compare.json, ab.json and other JSON beside the results
            if run.rows and run.run_id not in runs:
                runs[run.run_id] = run
    if not runs:
        raise ResultsError(f"no results file under {', '.join(folders)}")
    return sorted(runs.values(), key=lambda r: r.run_id)


def _machine(run: Run) -> str:
    return run.fingerprint.get("gpu_name") or run.fingerprint.get("cpu_model") or "unknown machine"


def _spread(run: Run, case: str) -> float | None:
    """Within-run spread of a timing case as a log-scale standard deviation (IQR / 1.349)."""
    samples = sorted(run.samples_ms.get(case) or [])
    if len(samples) < 4:
        return None
    q1, q3 = samples[len(samples) // 4], samples[(3 * len(samples)) // 4]
    med = statistics.median(samples)
    return (q3 - q1) / 1.349 / med if med > 0 else None


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
            toward_after = (lambda v: v > mid) if after > before else (lambda v: v < mid)
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


@dataclasses.dataclass
class Group:
    profile: str | None
    machine: str
    runs: list[Run]
    changes: list[dict]
    status_changes: list[dict]
    series: dict  # (case, metric) -> {"values", "spreads", "runs"}

    def to_json(self) -> dict:
        return {"profile": self.profile, "machine": self.machine, "runs": [r.run_id for r in self.runs],
                "changes": self.changes, "status_changes": self.status_changes}


def analyse(runs: list[Run], threshold: float | None = None) -> list[Group]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.profile, _machine(run)), []).append(run)
    return [_analyse_group(profile, machine, members, threshold) for (profile, machine), members in groups.items()]


def _analyse_group(profile, machine, runs: list[Run], threshold) -> Group:
    cases = sorted(set().union(*(r.rows for r in runs)))
    changes, status_changes, series = [], [], {}
    for case in cases:
        present = [r for r in runs if case in r.rows]
        statuses = [(r, r.rows[case].get("status") or "error") for r in present]
        for (prev, a), (run, b) in zip(statuses, statuses[1:]):
            if a != b:
                status_changes.append({"case": case, "run_id": run.run_id, "from": a, "to": b,
                                       "direction": "worse" if SEVERITY.get(b, 5) > SEVERITY.get(a, 5)
                                       else "better", "reason": run.rows[case].get("reason"),
                                       "repro": repro_command(case, run, run.rows[case])})
        suite = present[0].rows[case].get("suite") or "other"
        declared = declared_metrics(suite)
        for name, metric in declared.items():
            if metric.kind == "derived":
                continue
            points = [(r, metric_values(case, name, metric, [r])[0]) for r in present]
            points = [(r, v[0]) for r, v in points if v]
            if len(points) < 2 * MIN_SEGMENT:
                continue
            values = [v for _, v in points]
            spreads = [s for r, _ in points if (s := _spread(r, case)) is not None] if metric.kind == "timing" else []
            series[(case, name)] = {"values": values, "spreads": spreads, "runs": [r.run_id for r, _ in points]}
            thr = threshold if threshold is not None and metric.kind == "timing" else max(metric.threshold, 0.01)
            found = level_steps(values, metric.threshold) if metric.kind == "exact" else \
                change_points(values, thr)
            for cp in found:
                before_run, run = points[cp["index"] - 1][0], points[cp["index"]][0]
                worse = (cp["after"] > cp["before"]) == (metric.better == "lower")
                env = environment_diff([before_run], [run])
                versions = "; ".join(f"{e['key']} {e['base']} -> {e['new']}" for e in env
                                     if e["key"] in ("torch", "transformers", "cuda", "driver", "git_commit"))
                changes.append({"case": case, "metric": name, "unit": metric.unit, "run_id": run.run_id,
                                "before": cp["before"], "after": cp["after"], "ratio": cp["ratio"],
                                "direction": "worse" if worse else "better", "environment": env,
                                "repro": repro_command(case, run, run.rows[case])
                                + (f"  # {versions}" if versions else "")})
    return Group(profile, machine, runs, changes, status_changes, series)


def recent_worse(groups: list[Group], recent: int) -> list[dict]:
    """Changes toward worse that start in the last ``recent`` runs of their group, and status
    transitions toward worse there that still hold at the newest run."""
    out = []
    for g in groups:
        last = {r.run_id for r in g.runs[-recent:]}
        newest = g.runs[-1]
        out += [c for c in g.changes if c["direction"] == "worse" and c["run_id"] in last]
        for s in g.status_changes:
            still = (newest.rows.get(s["case"]) or {}).get("status") == s["to"]
            if s["direction"] == "worse" and s["run_id"] in last and still:
                out.append(s)
    return out

