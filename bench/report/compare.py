"""The upgrade verdict: a whole-run diff of one or several runs per side.

Sections, in the order a reader needs them: what changed in the environment, which cases
got worse or better in correctness (a status regression is a regression), numeric drift,
every declared metric (``bench.core.rows.METRICS``) with a verdict, and the warnings that
only the new run raised. Statistics: ``bench.report.stats`` (the run is the unit).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

from bench.core.load import FOREIGN_LOAD_WARN
from bench.core.rows import DRIFT_FACTOR, DRIFT_FLOOR, error_columns, metric_of, passed
from bench.report.comparable import (
    channel_warnings,
    check_comparable,
    lost_devices,
    reference_warnings,
    run_failures,
)
from bench.report.correctness import absent_in, case_on_one_side, correctness_diff, lost_in_some
from bench.report.curves import judge_curve
from bench.report.io import ResultsError
from bench.report.runs import (
    Run,
    distinct_runs,
    environment_diff,
    identity_of,
    left_out_by_plan,
    load_run,
    machine_identity,
    repro_command,
)
from bench.report.verdicts import decide, judge_case, two_channels


@dataclasses.dataclass
class Diff:
    runs_base: list[str]
    runs_new: list[str]
    environment: list[dict]
    correctness: list[dict]
    metrics: list[dict]
    drift: list[dict]
    only_in_base: list[str]
    only_in_new: list[str]
    new_warnings: list[dict]
    warnings: list[str]
    geomean: dict[str, float]
    repro: dict[str, str]
    crashes: list[dict] = dataclasses.field(default_factory=list)  # runs that gave no results (ab)
    alpha: float = 0.05
    run_regressions: list[dict] = dataclasses.field(default_factory=list)  # a lost device, a failed new run
    curves: list[dict] = dataclasses.field(default_factory=list)  # loss curves judged (bench.report.curves)

    @property
    def crash_regressions(self) -> list[dict]:
        """Crashes of the new side beyond those of the base side (an upgrade that crashes more
        often is the worst regression; a flaky base that crashed as often is not the upgrade's)."""
        new = [c for c in self.crashes if c["side"] == "new"]
        return new if len(new) > sum(c["side"] == "base" for c in self.crashes) else []

    @property
    def regressions(self) -> list[dict]:
        return [m for m in self.metrics if m["verdict"] == "regression"]

    @property
    def status_regressions(self) -> list[dict]:
        return [c for c in self.correctness if c["change"] == "regressed"]

    @property
    def verdict(self) -> str:
        bad = self.regressions or self.status_regressions or self.crash_regressions or self.run_regressions
        return "regression" if bad else "no_regression"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "regression" else 0

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "environment": self.environment, "correctness": self.correctness,
                "metrics": self.metrics, "drift": self.drift, "only_in_base": self.only_in_base,
                "only_in_new": self.only_in_new, "warnings": self.warnings, "new_warnings": self.new_warnings,
                "geomean_time_ratio": self.geomean, "repro": self.repro, "crashes": self.crashes,
                "run_regressions": self.run_regressions, "curves": self.curves,
                "runs": {"base": self.runs_base, "new": self.runs_new}, "method": method(self.alpha)}


def method(alpha: float) -> str:
    return (f"per metric: ratio of geometric means of run medians (new / base) with its {1 - 2 * alpha:.0%} "
            f"interval (Welch t on log run medians); regression/improvement: Benjamini-Hochberg q < {alpha:g} and "
            "the point estimate beyond the threshold; same: equivalence by two one-sided tests (q < "
            f"{alpha:g}), i.e. the interval inside +/- the threshold; unsure: anything else")


def compare_runs(base: list[Run], new: list[Run], threshold: float | None = None, alpha: float = 0.05,
                 allow_profile_mismatch: bool = False, allow_machine_mismatch: bool = False,
                 allow_selection_mismatch: bool = False, settled: dict | None = None) -> Diff:
    """``settled``: (case, metric) -> the entry an earlier look of a sequential experiment
    decided; it keeps that verdict and stays out of this look's false-discovery correction."""
    if not base or not new:
        raise ResultsError("compare needs at least one run on each side")
    if not 0 < alpha < 0.5:
        raise ResultsError(f"alpha {alpha}: give a level between 0 and 0.5, e.g. 0.05")
    twice: list[str] = []
    base, new = distinct_runs(base, "base", twice), distinct_runs(new, "new", twice)
    in_base = {identity_of(r) for r in base}
    both = [r.run_id for r in new if identity_of(r) in in_base]
    twice += [f"the same run on both sides ({', '.join(both[:3])}): it cannot differ from itself"] if both else []
    warnings = twice + check_comparable(base, new, allow_profile_mismatch, allow_machine_mismatch)
    base_cases = set().union(*(r.rows for r in base))
    new_cases = set().union(*(r.rows for r in new))
    common = sorted(base_cases & new_cases)
    if not common:
        raise ResultsError(f"the two sides have no case in common ({len(base_cases)} in base, {len(new_cases)} in new)")
    correctness, metrics, drift, repro, curves = [], [], [], {}, []
    if not allow_selection_mismatch:
        correctness += [case_on_one_side(case, base, lost=True) for case in sorted(base_cases - new_cases)]
    correctness += [case_on_one_side(case, new, lost=False) for case in sorted(new_cases - base_cases)]
    planned_out, compared = [], 0
    for case in common:
        brows = [r.rows[case] for r in base if case in r.rows]
        nrows = [r.rows[case] for r in new if case in r.rows]
        # a run whose time plan left the case out says nothing about it (as in history)
        brows = [r for r in brows if not left_out_by_plan(r)]
        nrows = [r for r in nrows if not left_out_by_plan(r)]
        if not brows or not nrows:
            planned_out.append(case)  # not run on a side by the time plan: nothing to compare, not a change
            continue
        c = correctness_diff(case, brows, nrows)
        absent = absent_in(case, new)
        if absent and not allow_selection_mismatch and not absent_in(case, base):
            c = lost_in_some(case, brows, c, absent, len(new))
        if c:
            correctness.append(c)
        compared += bool(c) or any(passed(r.get("status")) for r in brows + nrows)
        suite = brows[0].get("suite") or "other"
        same_status = c is None or c["base_status"] == c["new_status"]
        metrics += judge_case(case, suite, base, new, threshold, alpha, same_status)
        drift += _drift(case, suite, brows, nrows)
        curves += [v for v in [judge_curve(case, suite, brows, nrows)] if v]
    lost = lost_devices(base, new) + run_failures(base, new)
    if not compared and not correctness and not lost:
        raise ResultsError(_nothing_compared(common, planned_out, base))
    warnings += channel_warnings(base, new) + reference_warnings(base, new)
    # a metric an earlier look decided keeps that entry as it was (notes included) and stays out of
    # this look's correction and annotations; the open ones are judged here
    order = [(m["case"], m["metric"]) for m in metrics]
    metrics = [m for m in metrics if (m["case"], m["metric"]) not in (settled or {})]
    decide(metrics, alpha)
    two_channels(metrics, lambda suite, name: metric_of(suite, name).kind)
    busy = _busy_cases(base + new)
    replanned = _plan_differs(common, base, new)
    for m in metrics:
        m.pop("worse", None)
        # a value that went missing is not something load does: that verdict stands as it is
        if m["case"] in busy and m["verdict"] != "same" and m.get("test") != "presence" \
                and metric_of(m["suite"], m["metric"]).moved_by_load:
            _under_load(m, busy[m["case"]])
        if m["case"] in replanned and m["verdict"] != "unsure":  # a shrunk batch moves counts too
            m["note"] = (f"measured under different time plans ({replanned[m['case']]}): not like with like, so not "
                         f"decided (was {m['verdict']}); " + (m.get("note") or "")).strip()
            m["verdict"] = "unsure"
            m.pop("q_value", None)
    if settled:
        fresh = {(m["case"], m["metric"]): m for m in metrics}
        metrics = [fresh[k] if k in fresh else dict(settled[k]) for k in order]
    if planned_out:
        warnings.append(f"{len(planned_out)} case(s) were left out by a side's time plan and are not compared "
                        f"(first: {planned_out[0]}); --bench-time-budget 0 on both sides compares them")
    if replanned:
        warnings.append(f"{len(replanned)} case(s) were measured under different time plans (fewer rounds, a shrunk "
                        "batch): their timings are not decided; run both sides with the same selection and profile "
                        f"on the same machine (first: {next(iter(replanned))}: {next(iter(replanned.values()))})")
    if busy:
        warnings.append(f"{len(busy)} case(s) ran while other processes took over {FOREIGN_LOAD_WARN:.0%} of the CPU "
                        "(named in their notes): their timings are suspect")
    regressed = {m["case"] for m in metrics if m["verdict"] == "regression"} | \
        {c["case"] for c in correctness if c["change"] == "regressed"}
    for case in sorted(regressed):
        run = next(r for r in new + base if case in r.rows)
        repro[case] = repro_command(case, run, run.rows[case])
    return Diff([r.run_id for r in base], [r.run_id for r in new], environment_diff(base, new), correctness,
                metrics, drift, sorted(base_cases - new_cases), sorted(new_cases - base_cases),
                new_warnings(common, base, new), warnings, geomean_time_ratio(metrics), repro, alpha=alpha,
                run_regressions=lost, curves=curves)


def _nothing_compared(common: list[str], planned_out: list[str], base: list[Run]) -> str:
    """Why a comparison found nothing to judge: every shared case skipped on both sides, or left
    out by a time plan. "No regression" over nothing would be a verdict nobody earned."""
    ran = [c for c in common if c not in planned_out]
    first = ran[0] if ran else (planned_out[0] if planned_out else None)
    row = next((r.rows[first] for r in base if first in r.rows), {}) if first else {}
    return (f"nothing was compared: the {len(common)} case(s) both sides have did not pass on either side "
            f"({len(planned_out)} left out by a time plan; the rest skipped or not applicable)"
            + (f"; first: {first}: {row.get('status')}: {row.get('reason')}" if first else "")
            + ". Select cases this machine runs (compare the runs' reports' skip reasons)")


def _busy_cases(runs: list[Run]) -> dict[str, list[tuple[str, float]]]:
    """Cases whose row says other processes took over FOREIGN_LOAD_WARN of the CPU while
    they ran, with the runs where that happened and the share they took. A case too short to
    judge alone (no share of its own: ``bench.core.load.MIN_WALL_S``) takes its run's."""
    out: dict[str, list[tuple[str, float]]] = {}
    for r in runs:
        for case, row in r.rows.items():
            share = row.get("foreign_cpu_share")
            if share is None and passed(row.get("status")):
                share = r.foreign_cpu_share
            if isinstance(share, (int, float)) and share > FOREIGN_LOAD_WARN:
                out.setdefault(case, []).append((r.run_id, float(share)))
    return out


def _plan_differs(cases, base: list[Run], new: list[Run]) -> dict[str, str]:
    """Cases whose time-plan decision (bench.core.plan: full, min_rounds, shrunk) is not the same
    in every run of both sides: "base X, new Y". A row without one (older files) was timed in full."""
    out = {}
    for case in cases:
        b = {(r.rows[case].get("plan") or "full") for r in base if case in r.rows} - {"left_out"}  # gave no values
        n = {(r.rows[case].get("plan") or "full") for r in new if case in r.rows} - {"left_out"}
        if len(b | n) > 1:
            out[case] = f"base {'/'.join(sorted(b))}, new {'/'.join(sorted(n))}"
    return out


def _under_load(m: dict, loaded: list[tuple[str, float]]) -> None:
    """A metric a busy machine moves, of a case timed under foreign load. With one run a side
    there is nothing to tell the load from a change: it is ``unsure``, never a verdict. With
    several, the verdict stands on the other runs too, and says which runs were loaded."""
    where = ", ".join(f"{run} ({share:.0%})" for run, share in loaded)
    m["timed_under_load"] = where
    if min(m.get("runs_base", 0), m.get("runs_new", 0)) <= 1 and m["verdict"] in ("regression", "improvement"):
        m["note"] = (f"timed under load: other processes took the CPU in {where}; one run a side cannot tell "
                     f"load from a change (was {m['verdict']} at {m.get('ratio') or 0:.3g}x): rerun on a quiet "
                     "machine, or give >= 2 runs a side")
        m["verdict"], m["runs_needed"] = "unsure", None
        m.pop("q_value", None)
    else:
        m["note"] = (m.get("note") or "") + f" [timed under foreign load in {where}]"


def _drift(case: str, suite: str, brows: list[dict], nrows: list[dict]) -> list[dict]:
    out = []
    for col in error_columns(suite):
        b = [r.get(col) for r in brows if isinstance(r.get(col), (int, float))]
        n = [r.get(col) for r in nrows if isinstance(r.get(col), (int, float))]
        if b and n and max(n) > DRIFT_FLOOR and max(n) > DRIFT_FACTOR * max(max(b), DRIFT_FLOOR / DRIFT_FACTOR):
            out.append({"case": case, "suite": suite, "metric": col, "base": max(b), "new": max(n),
                        "factor": max(n) / max(max(b), DRIFT_FLOOR)})
    return out


def geomean_time_ratio(metrics: list[dict]) -> dict[str, float]:
    """Per suite, the geometric mean of new/base for its timing metrics: the headline."""
    logs: dict[str, list[float]] = {}
    for m in metrics:
        if metric_of(m["suite"], m["metric"]).kind == "timing" and m["ratio"]:
            logs.setdefault(m["suite"], []).append(math.log(m["ratio"]))
    return {s: math.exp(statistics.fmean(v)) for s, v in logs.items()}


def _warning_set(row: dict) -> set[str]:
    text = row.get("warnings") or ""
    return {w.strip() for w in (text if isinstance(text, list) else str(text).split("; ")) if w.strip()}


def new_warnings(cases: list[str], base: list[Run], new: list[Run]) -> list[dict]:
    out = []
    for case in cases:
        seen = set().union(*(_warning_set(r.rows[case]) for r in base if case in r.rows))
        for w in sorted(set().union(*(_warning_set(r.rows[case]) for r in new if case in r.rows)) - seen):
            out.append({"case": case, "warning": w})
    return out


def latest_in_history(reports_dir: Path, new: Run) -> Path:
    """The newest earlier run in ``reports/history`` of the same profile and machine."""
    found = latest_matching(sorted((reports_dir / "history").glob("*.json")), new)
    if found is None:
        raise ResultsError(f"no earlier run of profile {new.profile} on {machine_identity(new.fingerprint)} in "
                           f"{reports_dir / 'history'}")
    return found


def latest_matching(paths: list[Path], new: Run) -> Path | None:
    """Among results files, the newest run earlier than ``new`` with its profile and machine
    (a nightly's baseline must come from the same runner), or None."""
    machine = machine_identity(new.fingerprint)
    best: tuple[str, Path] | None = None
    for path in paths:
        try:
            cand = load_run(path)
        except ResultsError:
            continue
        if cand.run_id == new.run_id or Path(path).resolve() == Path(new.path).resolve():
            continue
        if cand.profile == new.profile and machine_identity(cand.fingerprint) == machine and cand.run_id < new.run_id \
                and (best is None or cand.run_id > best[0]):
            best = (cand.run_id, Path(path))
    return best[1] if best else None
