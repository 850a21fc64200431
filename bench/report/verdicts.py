"""Per-metric verdicts of a comparison: each declared metric of a case judged over the runs
of both sides (``bench.report.stats`` has the tests), then decided together so the
false-discovery rate holds over the whole comparison."""
from __future__ import annotations

import statistics

from bench.core.rows import Metric, declared_metrics
from bench.report import stats
from bench.report.runs import (
    Run,
    has_channel,
    impossible_in,
    metric_declared_in,
    metric_values,
    ok_runs,
    skipped_why,
)


def judge_case(case: str, suite: str, base_runs: list[Run], new_runs: list[Run], threshold: float | None,
               alpha: float, same_status: bool) -> list[dict]:
    out = []
    for name, metric in declared_metrics(suite).items():
        if metric.kind == "derived":
            continue
        base, new = base_runs, new_runs
        if metric.channel != "wall_time":  # judged over the runs that had its channel on (compare warns once)
            base = [r for r in base if has_channel(r, metric.channel)]
            new = [r for r in new if has_channel(r, metric.channel)]
            if not base or not new:
                continue
        b, rb = metric_values(case, name, metric, base)
        n, rn = metric_values(case, name, metric, new)
        if not b and not n:  # no value on either side (a CUDA column of a CPU row): nothing to judge
            continue
        impossible = impossible_in(case, name, base + new)
        if not b or not n:  # a value on one side only, while the case's status held
            if impossible and (b or n):
                out.append(_not_judged(case, suite, name, metric, len(b), len(n), "impossible value(s) left out: "
                                       + impossible))
            elif (b or n) and (why := skipped_why(case, name, new if b else base)):
                out.append(_not_judged(case, suite, name, metric, len(b), len(n),
                                       f"not measured on the {'new' if b else 'base'} side: {why}"))
            elif same_status and (b or metric_declared_in(case, name, base)):
                out.append(_missing_metric(case, suite, name, metric, "base" if b else "new", len(b), len(n)))
            continue
        ok_new = ok_runs(case, new)
        if len(b) == ok_runs(case, base) and len(n) < ok_new and not impossible \
                and not skipped_why(case, name, new):  # lost in some new runs, not all
            out.append(_missing_metric(case, suite, name, metric, "base", len(b), len(n),
                                       f"missing, None or NaN in {ok_new - len(n)} of {ok_new} new runs (ok rows) "
                                       "where every base run had a value"))
            continue
        thr = threshold if (threshold is not None and metric.kind == "timing") else metric.threshold
        entry = {"case": case, "suite": suite, "metric": name, "unit": metric.unit, "better": metric.better,
                 "base": statistics.median(b), "new": statistics.median(n), "runs_base": len(b),
                 "runs_new": len(n), "threshold": thr, **_judge(metric, b, n, rb, rn, thr, alpha)}
        if impossible:
            entry["note"] = f"{entry.get('note') or ''} [impossible value(s) left out: {impossible}]".strip()
        out.append(entry)
    return out


def _not_judged(case: str, suite: str, name: str, metric: Metric, runs_b: int, runs_n: int, why: str) -> dict:
    """A metric one side has no usable value of for a reason its rows state (a count left out
    for its cost, a value marked impossible): ``unsure`` with the reason, never a change."""
    return {"case": case, "suite": suite, "metric": name, "unit": metric.unit, "better": metric.better,
            "base": None, "new": None, "runs_base": runs_b, "runs_new": runs_n, "threshold": metric.threshold,
            "ratio": None, "p_value": None, "test": "none", "verdict": "unsure", "note": why}


def _judge(metric: Metric, base: list[float], new: list[float], raw_base, raw_new, threshold: float,
           alpha: float) -> dict:
    if metric.kind == "counted":
        return _judge_counted(metric, base, new, threshold, list(raw_base) + list(raw_new))
    if metric.kind == "exact":  # counts and accuracies: an absolute step, from 0 too
        step = statistics.median(new) - statistics.median(base)
        step = step if metric.better == "lower" else -step
        verdict = "regression" if step > threshold else "improvement" if step < -threshold else "same"
        return {"ratio": stats.ratio_of_medians(base, new), "p_value": None, "test": "exact", "verdict": verdict,
                "note": "deterministic: judged by the step of the medians"}
    bmed, nmed = statistics.median(base), statistics.median(new)
    if bmed <= 0 or nmed <= 0:  # a side at zero: no ratio, judged by consistency across runs
        return _judge_zero(metric, base, new, bmed, nmed)
    ev = stats.evidence(base, new, threshold, alpha)
    if ev is None:  # no positive, finite value on a side (the parser refuses non-finite samples)
        return {"ratio": None, "p_value": None, "test": "none", "verdict": "unsure",
                "note": "a side has no positive finite value: nothing to test"}
    worse = stats.worse_ratio(ev.ratio, metric.better)
    out = {"ratio": ev.ratio, "ci_low": ev.ci_low, "ci_high": ev.ci_high, "p_value": ev.p_diff,
           "p_same": ev.p_same, "sd_log": ev.sd_log, "test": ev.test, "worse": worse, "note": ""}
    if ev.p_diff is not None:
        return {**out, "verdict": "pending"}
    # One run a side: the between-run spread is unknown, so no interval and never "same".
    p = stats.mann_whitney_p(raw_base, raw_new) if metric.kind == "timing" else None
    floor = stats.SINGLE_RUN_FLOOR
    if (worse >= floor or worse <= 1 / floor) and p is not None:  # decided with the others (BH, alpha)
        return {**out, "p_value": p, "test": "mann-whitney(rounds), beyond the single-run floor",
                "verdict": "pending", "floor": floor,
                "note": f"one run a side: can be called only beyond the {floor:g}x that separates two runs of "
                        "unchanged code, when the rounds differ"}
    return {**out, "verdict": "unsure",
            "note": "one run a side: run-to-run spread unknown, so neither a change nor its absence is shown; "
                    f"give >= 2 runs a side ({stats.MIN_RUNS} recommended: python -m bench ab --runs)"}


def _judge_counted(metric: Metric, base: list[float], new: list[float], threshold: float,
                   row_spreads: list[float] = ()) -> dict:
    """A count that repeats within a measured band: one run a side is evidence. ``same`` only
    when the change plus the band stays inside the threshold; a change beyond threshold plus
    band is called; in between, ``unsure``. The band is the largest of the declared one (the
    A/A across processes), the spread between runs of either side, and the spread each row
    measured between its own two counts."""
    bmed, nmed = statistics.median(base), statistics.median(new)
    if bmed <= 0 or nmed <= 0:
        return _judge_zero(metric, base, new, bmed, nmed)
    spread = max([max(v) / min(v) - 1 for v in (base, new) if min(v) > 0] + [0.0])
    noise = max([metric.noise, spread, *row_spreads])
    ratio = nmed / bmed
    worse = stats.worse_ratio(ratio, metric.better)
    out = {"ratio": ratio, "p_value": None, "test": f"count, noise band +/-{noise:.2%}", "worse": worse}
    if worse > (1 + threshold) * (1 + noise):
        return {**out, "verdict": "regression", "note": f"beyond +{threshold:.1%} by more than the band"}
    if worse < 1 / ((1 + threshold) * (1 + noise)):
        return {**out, "verdict": "improvement", "note": f"beyond -{threshold:.1%} by more than the band"}
    if noise < threshold and 1 / ((1 + threshold) / (1 + noise)) <= worse <= (1 + threshold) / (1 + noise):
        return {**out, "verdict": "same", "note": f"within +/-{threshold:.1%} with the band"}
    return {**out, "verdict": "unsure", "note": f"within +/-{noise:.2%} of the +/-{threshold:.1%} threshold"}


def _judge_zero(metric: Metric, base: list[float], new: list[float], bmed: float, nmed: float) -> dict:
    """A side whose median is zero has no ratio: ``same`` only when every value is zero."""
    if not any(base) and not any(new):
        return {"ratio": None, "p_value": None, "test": "none", "verdict": "same", "note": "zero in every run"}
    worse_now = (nmed > bmed) == (metric.better == "lower")
    return {"ratio": nmed / bmed if bmed else None, "p_value": None, "test": "none (a side is zero)",
            "verdict": "unsure", "note": f"{'base' if bmed == 0 else 'new'} median is zero; toward "
                                         f"{'worse' if worse_now else 'better'}, no ratio to test"}


def _missing_metric(case: str, suite: str, name: str, metric: Metric, side_has: str, runs_b, runs_n,
                    note: str | None = None) -> dict:
    """A metric with values on one side and none (missing, None, NaN) on the other, while the
    case itself stayed ok: a lost value is a change toward worse, never dropped."""
    lost = side_has == "base"
    return {"case": case, "suite": suite, "metric": name, "unit": metric.unit, "better": metric.better,
            "base": None, "new": None, "runs_base": runs_b, "runs_new": runs_n, "threshold": metric.threshold,
            "ratio": None, "p_value": None, "test": "presence",
            "verdict": "regression" if lost else "improvement",
            "note": note or ("missing, None or NaN in the new run(s) where base had a value" if lost else
                             "base had no value (None or NaN) where the new run(s) have one")}


def decide(metrics: list[dict], alpha: float) -> None:
    """Benjamini-Hochberg over every run-level test of this comparison, separately for the
    difference tests and for the equivalence tests; then the threshold."""
    pending = [m for m in metrics if m["verdict"] == "pending"]
    q_diff = stats.benjamini_hochberg([m["p_value"] for m in pending])
    q_same = stats.benjamini_hochberg([m["p_same"] for m in pending])
    for m, qd, qs in zip(pending, q_diff, q_same):
        worse, thr = m["worse"], m["threshold"]
        m["q_same"] = qs
        if m.get("floor"):  # one run a side: beyond the floor, or nothing
            thr = m.pop("floor") - 1
        if qd is not None and qd < alpha and worse > 1 + thr:
            m["verdict"], m["q_value"] = "regression", qd
        elif qd is not None and qd < alpha and worse < 1 / (1 + thr):
            m["verdict"], m["q_value"] = "improvement", qd
        elif qs is not None and qs < alpha:
            m["verdict"], m["q_value"] = "same", qs
            m["note"] = f"interval inside +/-{thr:.0%}"
        else:
            m["verdict"], m["q_value"] = "unsure", qd
            m["note"] = m.get("note") or "neither a change beyond the threshold nor equivalence within it is shown"
    for m in metrics:
        if m["verdict"] == "unsure" and m.get("ratio"):
            m["runs_needed"] = stats.runs_needed(m["ratio"], m.get("sd_log"), m["threshold"], alpha,
                                                 more_than=min(m.get("runs_base", 0), m.get("runs_new", 0)))


def two_channels(metrics: list[dict], kind_of) -> None:
    """One verdict, two channels: where a case's wall time and its instruction count disagree,
    say what that means on both lines instead of letting one hide the other."""
    cases: dict[str, list[dict]] = {}
    for m in metrics:
        cases.setdefault(m["case"], []).append(m)
    for ms in cases.values():
        instr = next((m for m in ms if m["metric"] == "instructions"), None)
        timed = next((m for m in ms if kind_of(m["suite"], m["metric"]) == "timing"), None)
        if instr is None or timed is None:
            continue
        iv, tv, text = instr["verdict"], timed["verdict"], None
        if iv == "same" and tv in ("regression", "improvement"):
            text = (f"{'slower' if tv == 'regression' else 'faster'} in time with the same instructions: memory, "
                    "threads, frequency or the machine, not the work done")
        elif iv in ("regression", "improvement") and tv in ("same", "unsure"):
            ratio = f" ({instr['ratio']:.3f}x)" if isinstance(instr.get("ratio"), (int, float)) else ""
            text = (f"{'more' if iv == 'regression' else 'fewer'} instructions{ratio} while wall "
                    f"time is {tv}: a change the wall clock does not resolve here")
        elif {iv, tv} == {"regression", "improvement"}:
            text = "instructions and wall time moved in opposite directions"
        if text:
            for m in (instr, timed):
                m["channels"] = text
                m["note"] = f"{m.get('note') or ''} [two channels: {text}]".strip()
