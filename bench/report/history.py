"""``python -m bench history``: trends and change points over every run.

Runs are grouped by profile and machine (``compare``'s machine identity) and ordered by their
run id (its time). For every case and declared metric (``bench.core.rows.METRICS``) the per-run values form a series in
which change points are found with ruptures' PELT (exact penalised segmentation; a
maintained library with a small C core, chosen over Apache Otava's E-Divisive, which is a
service-style tool with its own storage). The series is in logs, so a step is a ratio; the
penalty scales with the series' run-to-run noise (from successive differences, robust to the
steps themselves), so a noisy benchmark needs a larger step. The spread of the rounds inside
one run plays no part: each point is a run's median, whose noise is the between-run spread
(a run whose rounds spread 30 % can still have a median that moves 2 % between runs, and a
25 % step in it must be found). A step counts only when it also exceeds the metric's
threshold and at least ``MIN_SEGMENT`` runs stand on each side of it: one noisy night is
not a change. Status transitions (``ok`` for 20 nights, ``mismatch`` since) are changes too,
and so is a training row's loss curve that left the previous run's (``bench.report.curves``:
the run where it happened, the first step beyond the band, the versions that changed).
"""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from bench.core.rows import FAILURES, declared_metrics, passed, severity
from bench.report.changepoints import (  # noqa: F401  (re-exported: history's public names)
    MIN_SEGMENT,
    NOISE_FLOOR,
    PENALTY,
    change_points,
    level_steps,
    noise_of,
)
from bench.report.curves import judge_curve
from bench.report.io import ResultsError
from bench.report.runs import (
    Run,
    environment_diff,
    has_channel,
    impossible_in,
    left_out_by_plan,
    load_run,
    machine_identity,
    metric_values,
    repro_command,
    skipped_why,
)


def find_runs(folders: list[str], unreadable: list[str] | None = None) -> list[Run]:
    """Every results file under ``folders`` (history files, reports/<run>/results.json,
    nightly artifacts unpacked into folders), one per run id. A file that should be a run and
    cannot be read (a results.json, or JSON that does not parse: a night cut off while writing)
    is named in ``unreadable``; other JSON beside the results (compare.json, ab.json) is passed over."""
    runs: dict[str, Run] = {}
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise ResultsError(f"{folder}: no such folder")
        paths = [root] if root.is_file() else sorted(root.rglob("*.json"))
        for path in paths:
            try:
                run = load_run(path)
            except ResultsError as exc:
                if unreadable is not None and (path.name == "results.json" or "not valid JSON" in str(exc)
                                               or "malformed results file" in str(exc)):
                    unreadable.append(str(exc))
                continue
            if run.rows and run.run_id not in runs:
                runs[run.run_id] = run
    if not runs:
        raise ResultsError(f"no results file under {', '.join(folders)}"
                           + (f" that could be read ({'; '.join((unreadable or [])[:3])})" if unreadable else ""))
    return sorted(runs.values(), key=lambda r: r.run_id)


def _machine(run: Run) -> str:
    """The machine identity ``compare`` uses (CPU model and cores, GPU count and models): a
    1-GPU night and an 8-GPU night are two series, not one with skips in it."""
    return machine_identity(run.fingerprint) or "unknown machine"


def _spread(run: Run, case: str) -> float | None:
    """Within-run spread of a timing case as a log-scale standard deviation (IQR / 1.349)."""
    samples = sorted(run.samples_ms.get(case) or [])
    if len(samples) < 4:
        return None
    q1, q3 = samples[len(samples) // 4], samples[(3 * len(samples)) // 4]
    med = statistics.median(samples)
    return (q3 - q1) / 1.349 / med if med > 0 else None


@dataclasses.dataclass
class Group:
    profile: str | None
    machine: str
    runs: list[Run]
    changes: list[dict]
    status_changes: list[dict]
    series: dict  # (case, metric) -> {"values", "spreads", "runs"}
    curve_changes: list[dict] = dataclasses.field(default_factory=list)
    incomplete: list[dict] = dataclasses.field(default_factory=list)  # runs that did not finish

    def to_json(self) -> dict:
        return {"profile": self.profile, "machine": self.machine, "runs": [r.run_id for r in self.runs],
                "changes": self.changes, "status_changes": self.status_changes, "curve_changes": self.curve_changes,
                "incomplete": self.incomplete}


def analyse(runs: list[Run], threshold: float | None = None) -> list[Group]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.profile, _machine(run)), []).append(run)
    return [_analyse_group(profile, machine, members, threshold) for (profile, machine), members in groups.items()]


def _analyse_group(profile, machine, runs: list[Run], threshold) -> Group:
    cases = sorted(set().union(*(r.rows for r in runs)))
    changes, status_changes, curve_changes, series = [], [], [], {}
    for case in cases:
        present = [r for r in runs if case in r.rows]
        # a run whose time plan left the case out says nothing about it (bench.core.plan)
        statuses = [(r, r.rows[case].get("status") or "error") for r in present
                    if not left_out_by_plan(r.rows[case])]
        for (_, a), (run, b) in zip(statuses, statuses[1:]):
            if a != b and not (passed(a) and passed(b)):  # ok <-> fixed_upstream: both passed
                status_changes.append({"case": case, "run_id": run.run_id, "from": a, "to": b,
                                       "now": statuses[-1][1],  # the newest status the case has (not left out)
                                       "direction": "worse" if severity(b) > severity(a)
                                       else "better", "reason": run.rows[case].get("reason"),
                                       "repro": repro_command(case, run, run.rows[case])})
        suite = present[0].rows[case].get("suite") or "other"
        curve_changes += _curve_changes(case, suite, present)
        declared = declared_metrics(suite)
        for name, metric in declared.items():
            if metric.kind == "derived":
                continue
            judged = [r for r in present if has_channel(r, metric.channel)]
            points = [(r, metric_values(case, name, metric, [r])[0]) for r in judged]
            points = [(r, v[0]) for r, v in points if v]
            changes += _lost_value(case, name, metric, judged, points)
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
    incomplete = [{"run_id": r.run_id, "reason": f"the run did not finish (its results say complete: false) after "
                   f"{len(r.rows)} case(s)"} for r in runs if not r.complete]
    return Group(profile, machine, runs, changes, status_changes, series, curve_changes, incomplete)


def _lost_value(case: str, name: str, metric, runs: list[Run], points: list[tuple[Run, float]]) -> list[dict]:
    """A metric that had a value and has none in the last MIN_SEGMENT or more passing runs (its
    case still ok, no row saying why it was not measured, none marking it impossible, timings
    taken): a lost value is a change toward worse, as in compare."""
    if not points:
        return []
    last_run, last = points[-1]
    since = [r for r in runs[runs.index(last_run) + 1:] if passed(r.rows[case].get("status"))
             and not left_out_by_plan(r.rows[case])]
    if metric.kind == "timing":  # a run under --benchmark-disable times nothing: it lost no value
        since = [r for r in since if r.samples_ms]
    if len(since) < MIN_SEGMENT or skipped_why(case, name, since) or impossible_in(case, name, since):
        return []
    return [{"case": case, "metric": name, "unit": metric.unit, "run_id": since[0].run_id, "before": last,
             "after": None, "ratio": None, "direction": "worse", "kind": "lost",
             "repro": repro_command(case, since[0], since[0].rows[case])
             + f"  # no value in the {len(since)} passing run(s) since {last_run.run_id}"}]


def _curve_changes(case: str, suite: str, runs: list[Run]) -> list[dict]:
    """Each run whose loss curve for ``case`` left the previous run's (both passed): a finding
    at that run, naming the first step beyond the band and what changed in the environment."""
    out, previous = [], None
    for run in runs:
        row = run.rows[case]
        if not passed(row.get("status")) or not row.get("loss_curve"):
            continue
        if previous is not None:
            judged = judge_curve(case, suite, [previous.rows[case]], [row])
            if judged and judged["verdict"] == "changed":
                env = environment_diff([previous], [run])
                out.append({"case": case, "run_id": run.run_id, "first_step": judged["first_step"],
                            "max_rel_diff": judged["max_rel_diff"], "note": judged["note"],
                            "environment": "; ".join(f"{e['key']} {e['base']} -> {e['new']}" for e in env)})
        previous = run
    return out


def recent_worse(groups: list[Group], recent: int) -> list[dict]:
    """Changes toward worse that start in the last ``recent`` runs of their group, and status
    transitions toward worse there that still hold at the newest run."""
    out = []
    for g in groups:
        last = {r.run_id for r in g.runs[-recent:]}
        out += [c for c in g.changes if c["direction"] == "worse" and c["run_id"] in last]
        for s in g.status_changes:
            # still failing at the case's newest status, whatever failure it is now (mismatch -> oom),
            # and not put right since (ok again; a later skip or a time plan's left-out says nothing)
            now = s.get("now", s["to"])
            still = now == s["to"] or (now in FAILURES and severity(now) > severity(s["from"]))
            if s["direction"] == "worse" and s["run_id"] in last and still:
                out.append(s)
        out += [{"direction": "worse", **r} for r in g.incomplete if r["run_id"] in last]
    return out

