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

from bench.core.rows import DRIFT_FACTOR, DRIFT_FLOOR, ERROR_COLUMNS, Metric, declared_metrics, metric_of
from bench.report import stats
from bench.report.io import ResultsError
from bench.report.runs import Run, environment_diff, load_run, metric_values, repro_command

# Worst first: a side's status over several runs is its worst one.
STATUS_ORDER = ("error", "mismatch", "oom", "unsupported", "skipped", "ok")
FAILING = ("error", "mismatch", "oom")


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

    @property
    def regressions(self) -> list[dict]:
        return [m for m in self.metrics if m["verdict"] == "regression"]

    @property
    def status_regressions(self) -> list[dict]:
        return [c for c in self.correctness if c["change"] == "regressed"]

    @property
    def verdict(self) -> str:
        return "regression" if self.regressions or self.status_regressions else "no_regression"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "regression" else 0

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "environment": self.environment, "correctness": self.correctness,
                "metrics": self.metrics, "drift": self.drift, "only_in_base": self.only_in_base,
                "only_in_new": self.only_in_new, "warnings": self.warnings, "new_warnings": self.new_warnings,
                "geomean_time_ratio": self.geomean, "repro": self.repro,
                "runs": {"base": self.runs_base, "new": self.runs_new}}


def _worst(statuses: list[str]) -> str:
    return min(statuses, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 0)


def _fraction_or_all(value) -> float:
    f = _checks_fraction(value)
    return 1.0 if f is None else f


def _checks_fraction(value) -> float | None:
    try:
        done, total = str(value).split("/")
        return int(done) / int(total) if int(total) else None
    except ValueError:
        return None


def correctness_diff(case: str, base_rows: list[dict], new_rows: list[dict]) -> dict | None:
    bs, ns = _worst([r.get("status") or "error" for r in base_rows]), _worst([r.get("status") or "error"
                                                                             for r in new_rows])
    brow = next(r for r in base_rows if (r.get("status") or "error") == bs)
    nrow = next(r for r in new_rows if (r.get("status") or "error") == ns)
    change = None
    rank = STATUS_ORDER.index
    if bs == "ok" and ns != "ok":
        change = "regressed"
    elif bs != "ok" and ns == "ok":
        change = "fixed"
    elif bs != ns and ns in FAILING and rank(ns) < rank(bs):
        change = "regressed"  # e.g. unsupported -> error, skipped -> mismatch: a failure appeared
    elif bs != ns:
        change = "changed"
    elif bs == "ok":
        cb = min(_fraction_or_all(r.get("checks_passed")) for r in base_rows)
        cn = min(_fraction_or_all(r.get("checks_passed")) for r in new_rows)
        if cn < cb:
            change = "regressed"
        elif cn > cb:
            change = "fixed"
    if change is None:
        return None
    return {"case": case, "suite": brow.get("suite"), "base_status": bs, "new_status": ns,
            "base_reason": brow.get("reason") or (f"checks {brow.get('checks_passed')}" if bs == "ok" else None),
            "new_reason": nrow.get("reason") or (f"checks {nrow.get('checks_passed')}" if ns == "ok" else None),
            "change": change}


def _judge(metric: Metric, base: list[float], new: list[float], raw_base, raw_new, threshold: float) -> dict:
    ratio = stats.ratio_of_medians(base, new)
    if metric.kind == "exact":  # counts and accuracies: an absolute step, from 0 too
        step = statistics.median(new) - statistics.median(base)
        step = step if metric.better == "lower" else -step
        verdict = "regression" if step > threshold else "improvement" if step < -threshold else "same"
        return {"ratio": ratio, "p_value": None, "test": "exact", "verdict": verdict, "note": ""}
    if ratio is None or ratio == 0:
        bmed, nmed = statistics.median(base), statistics.median(new)
        if bmed == nmed:
            return {"ratio": ratio, "p_value": None, "test": "none", "verdict": "same", "note": ""}
        worse_now = (nmed > bmed) == (metric.better == "lower")
        if len(base) >= stats.MIN_RUNS and len(new) >= stats.MIN_RUNS:
            return {"ratio": ratio, "p_value": stats.welch_log_p(base, new), "test": "welch-t(log run medians)",
                    "verdict": "pending", "worse": math.inf if worse_now else 0.0, "note": "a side is zero"}
        return {"ratio": ratio, "p_value": None, "test": "none", "verdict": "unsure",
                "note": f"{'base' if ratio is None else 'new'} is zero; the change is toward "
                        f"{'worse' if worse_now else 'better'}"}
    worse = stats.worse_ratio(ratio, metric.better)
    if len(base) >= stats.MIN_RUNS and len(new) >= stats.MIN_RUNS:
        p = stats.welch_log_p(base, new)
        return {"ratio": ratio, "p_value": p, "test": "welch-t(log run medians)", "verdict": "pending",
                "worse": worse, "note": ""}
    # One or two runs a side: the between-run spread is unknown.
    p = stats.mann_whitney_p(raw_base, raw_new) if metric.kind == "timing" else None
    beyond = worse > 1 + threshold or worse < 1 / (1 + threshold)
    if not beyond:
        return {"ratio": ratio, "p_value": p, "test": "threshold", "verdict": "same", "note": ""}
    floor = stats.SINGLE_RUN_FLOOR
    big = worse >= floor or worse <= 1 / floor
    # only raw samples can confirm a single-run change: a one-number metric stays unsure
    confirmed = big and p is not None and p < 0.05
    verdict = ("regression" if worse > 1 else "improvement") if confirmed else "unsure"
    note = "" if confirmed else (f"beyond {threshold:.0%} but within the {floor:g}x that separates two runs of "
                                 f"unchanged code; needs >= {stats.MIN_RUNS} runs a side (bench ab --runs)")
    return {"ratio": ratio, "p_value": p, "test": "mann-whitney(rounds)" if p is not None else "threshold",
            "verdict": verdict, "note": note}


def compare_runs(base: list[Run], new: list[Run], threshold: float | None = None, alpha: float = 0.05,
                 allow_profile_mismatch: bool = False) -> Diff:
    if not base or not new:
        raise ResultsError("compare needs at least one run on each side")
    warnings: list[str] = []
    profiles = {r.profile for r in base + new if r.profile}
    if len(profiles) > 1:
        text = (f"runs used different profiles ({', '.join(sorted(profiles))}): the same cases measure different "
                "workloads (batch sizes, sequence lengths)")
        if not allow_profile_mismatch:
            raise ResultsError(text + "; pass --allow-profile-mismatch to compare them anyway")
        warnings.append(text)
    for r in base + new:
        if not r.complete:
            warnings.append(f"run {r.run_id} is incomplete (interrupted): cases it did not reach are missing")
    base_cases = set().union(*(r.rows for r in base))
    new_cases = set().union(*(r.rows for r in new))
    common = sorted(base_cases & new_cases)
    if not common:
        raise ResultsError(f"the two sides have no case in common ({len(base_cases)} in base, {len(new_cases)} in new)")
    correctness, metrics, drift, repro = [], [], [], {}
    for case in common:
        brows = [r.rows[case] for r in base if case in r.rows]
        nrows = [r.rows[case] for r in new if case in r.rows]
        c = correctness_diff(case, brows, nrows)
        if c:
            correctness.append(c)
        suite = brows[0].get("suite") or "other"
        declared = declared_metrics(suite)
        for name, metric in declared.items():
            if metric.kind == "derived":
                continue
            b, rb = metric_values(case, name, metric, base)
            n, rn = metric_values(case, name, metric, new)
            if not b or not n:
                continue
            thr = threshold if (threshold is not None and metric.kind == "timing") else metric.threshold
            judged = _judge(metric, b, n, rb, rn, thr)
            metrics.append({"case": case, "suite": suite, "metric": name, "unit": metric.unit,
                            "better": metric.better, "base": statistics.median(b), "new": statistics.median(n),
                            "runs_base": len(b), "runs_new": len(n), "threshold": thr, **judged})
        for col in ERROR_COLUMNS:
            b = [r.get(col) for r in brows if isinstance(r.get(col), (int, float))]
            n = [r.get(col) for r in nrows if isinstance(r.get(col), (int, float))]
            if b and n and max(n) > DRIFT_FLOOR and max(n) > DRIFT_FACTOR * max(max(b), DRIFT_FLOOR / DRIFT_FACTOR):
                drift.append({"case": case, "suite": suite, "metric": col, "base": max(b), "new": max(n),
                              "factor": max(n) / max(max(b), DRIFT_FLOOR)})
    _decide_multi_run(metrics, alpha)
    for m in metrics:
        m.pop("worse", None)
    regressed = {m["case"] for m in metrics if m["verdict"] == "regression"} | \
        {c["case"] for c in correctness if c["change"] == "regressed"}
    for case in sorted(regressed):
        repro[case] = repro_command(case, base[0], (new[0].rows.get(case) or {}))
    return Diff([r.run_id for r in base], [r.run_id for r in new], environment_diff(base, new), correctness,
                metrics, drift, sorted(base_cases - new_cases), sorted(new_cases - base_cases),
                new_warnings(common, base, new), warnings, geomean_time_ratio(metrics), repro)


def _decide_multi_run(metrics: list[dict], alpha: float) -> None:
    """Benjamini-Hochberg over every run-level test of this comparison, then the threshold."""
    pending = [m for m in metrics if m["verdict"] == "pending"]
    qvalues = stats.benjamini_hochberg([m["p_value"] for m in pending])
    for m, q in zip(pending, qvalues):
        m["q_value"] = q
        worse, thr = m["worse"], m["threshold"]
        significant = q is not None and q < alpha
        if significant and worse > 1 + thr:
            m["verdict"] = "regression"
        elif significant and worse < 1 / (1 + thr):
            m["verdict"] = "improvement"
        else:
            m["verdict"] = "same"


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
    history = sorted((reports_dir / "history").glob("*.json"))
    machine = _machine(new.fingerprint)
    for path in reversed(history):
        try:
            cand = load_run(path)
        except ResultsError:
            continue
        if cand.run_id == new.run_id or Path(path).resolve() == Path(new.path).resolve():
            continue
        if cand.profile == new.profile and _machine(cand.fingerprint) == machine and cand.run_id < new.run_id:
            return path
    raise ResultsError(f"no earlier run of profile {new.profile} on {machine} in {reports_dir / 'history'}")


def _machine(fp: dict) -> str:
    return fp.get("gpu_name") or fp.get("cpu_model") or "unknown machine"
