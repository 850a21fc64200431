"""The correctness side of ``compare``: a case's statuses on each side, run by run, and whether it
regressed, was fixed, is flaky, or lost checks (newly not applicable, or fewer checks ran); a case
present on one side only, or missing from some runs of a side."""
from __future__ import annotations

from bench.core.rows import FAILURES, passed, severity
from bench.report.runs import Run


def _worst(statuses: list[str]) -> str:
    """A side's status over several runs: its worst (an unknown status counts as worst)."""
    return max(statuses, key=severity)


def _fraction_or_all(value) -> float:
    f = _checks_fraction(value)
    return 1.0 if f is None else f


def _not_applicable(row: dict) -> set[str]:
    """The checks a row says were not applicable: its ``not_applicable_checks`` names, or
    (rows written before that column) the names in front of the ``not_applicable`` texts."""
    names = row.get("not_applicable_checks")
    if names is not None:
        return {n.strip() for n in str(names).split(",") if n.strip()}
    text = row.get("not_applicable") or ""
    return {part.split(":", 1)[0].strip() for part in str(text).split("; ") if part.strip()}


def _total_checks(row: dict) -> int | None:
    """Checks that ran: correctness (``checks_passed``) plus cost checks (``cost_checks``;
    rows written before that column counted both in ``checks_passed``)."""
    counts = [_denominator(row.get(k)) for k in ("checks_passed", "cost_checks")]
    return None if counts[0] is None else counts[0] + (counts[1] or 0)


def _denominator(value) -> int | None:
    parts = str(value).split("/")
    return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None


def _checks_lost(base_rows: list[dict], new_rows: list[dict]) -> str:
    """Checks that ran on the base side and no longer run on the new one (now not
    applicable, or fewer checks in total): less is checked, a correctness change."""
    newly_na = set().union(*map(_not_applicable, new_rows)) - set().union(*map(_not_applicable, base_rows))
    if newly_na:
        return ", ".join(sorted(newly_na)) + " (now not applicable)"
    totals_b = [t for t in map(_total_checks, base_rows) if t is not None]
    totals_n = [t for t in map(_total_checks, new_rows) if t is not None]
    if totals_b and totals_n and min(totals_n) < max(totals_b):
        return f"{max(totals_b) - min(totals_n)} check(s): {max(totals_b)} ran before, {min(totals_n)} now"
    return ""


def _checks_fraction(value) -> float | None:
    try:
        done, total = str(value).split("/")
        return int(done) / int(total) if int(total) else None
    except ValueError:
        return None


def _passes(rows: list[dict]) -> int:
    return sum(passed(r.get("status") or "error") for r in rows)


def _tally(rows: list[dict], side: str) -> str:
    statuses = [r.get("status") or "error" for r in rows]
    failed = sorted({s for s in statuses if not passed(s)})
    return f"passed in {_passes(rows)} of {len(rows)} {side} run(s)" + (f" ({', '.join(failed)} in the others)"
                                                                     if failed and _passes(rows) else "")


def correctness_diff(case: str, base_rows: list[dict], new_rows: list[dict]) -> dict | None:
    """Statuses are judged per run: a side that passes in some runs and fails in others is
    flaky, and a flaky base does not hide a new side that fails in every run (the worst status
    of each side alone would read "mismatch -> mismatch", no change)."""
    pb, pn = _passes(base_rows), _passes(new_rows)
    if 0 < pb < len(base_rows) or 0 < pn < len(new_rows):
        return _flaky_diff(case, base_rows, new_rows, pb, pn)
    return _worst_diff(case, base_rows, new_rows)


def _flaky_diff(case: str, base_rows: list[dict], new_rows: list[dict], pb: int, pn: int) -> dict | None:
    """At least one side passed in some runs and not in others."""
    nb, nn = len(base_rows), len(new_rows)
    if pb == nb:  # base always passed, new failed in some: a failure appeared
        change = "regressed"
    elif pn == 0:
        change = "regressed"  # flaky before, failing in every new run
    elif pn == nn:
        change = "fixed"      # flaky or failing before, passing in every new run
    elif pb == 0:
        change = "changed"    # failing in every base run, passing in some new ones
    else:
        change = "flaky"      # flaky on both sides: named, not judged as a change
    bs, ns = _worst([r.get("status") or "error" for r in base_rows]), _worst([r.get("status") or "error"
                                                                             for r in new_rows])
    brow = next((r for r in base_rows if not passed(r.get("status") or "error")), base_rows[0])
    nrow = next((r for r in new_rows if not passed(r.get("status") or "error")), new_rows[0])
    return {"case": case, "suite": brow.get("suite"), "base_status": bs, "new_status": ns,
            "base_reason": "; ".join(filter(None, [_tally(base_rows, "base"), brow.get("reason")])),
            "new_reason": "; ".join(filter(None, [_tally(new_rows, "new"), nrow.get("reason")])),
            "change": change, "base_passed": f"{pb}/{nb}", "new_passed": f"{pn}/{nn}"}


def _worst_diff(case: str, base_rows: list[dict], new_rows: list[dict]) -> dict | None:
    """Each side passed in every run or in none: its worst status stands for it."""
    bs, ns = _worst([r.get("status") or "error" for r in base_rows]), _worst([r.get("status") or "error"
                                                                             for r in new_rows])
    brow = next(r for r in base_rows if (r.get("status") or "error") == bs)
    nrow = next(r for r in new_rows if (r.get("status") or "error") == ns)
    change = None
    # ok and fixed_upstream both passed; ok -> known_failure is a regression however well known the
    # bug (the upgrade under test brought it), known_failure -> ok is fixed
    if passed(bs) and not passed(ns):
        change = "regressed"
    elif not passed(bs) and passed(ns):
        change = "fixed"
    elif bs != ns and ns in FAILURES and severity(ns) > severity(bs):
        change = "regressed"  # e.g. unsupported -> error, known_failure -> error: a failure appeared
    elif bs != ns and not passed(bs):
        change = "changed"
    elif passed(bs):
        cb = min(_fraction_or_all(r.get("checks_passed")) for r in base_rows)
        cn = min(_fraction_or_all(r.get("checks_passed")) for r in new_rows)
        lost = _checks_lost(base_rows, new_rows)
        if cn < cb or lost:
            change = "regressed"
        elif cn > cb:
            change = "fixed"
        if lost:
            return {"case": case, "suite": brow.get("suite"), "base_status": bs, "new_status": ns,
                    "base_reason": f"checks {brow.get('checks_passed')}",
                    "new_reason": f"checks {nrow.get('checks_passed')}; no longer run: {lost}", "change": change}
    if change is None:
        return None
    return {"case": case, "suite": brow.get("suite"), "base_status": bs, "new_status": ns,
            "base_reason": brow.get("reason") or (f"checks {brow.get('checks_passed')}" if passed(bs) else None),
            "new_reason": nrow.get("reason") or (f"checks {nrow.get('checks_passed')}" if passed(ns) else None),
            "change": change}


def case_on_one_side(case: str, runs: list[Run], lost: bool) -> dict:
    row = next(r.rows[case] for r in runs if case in r.rows)
    status = row.get("status") or "error"
    entry = {"case": case, "suite": row.get("suite"), "change": "regressed" if lost else "changed"}
    if lost:
        return {**entry, "base_status": status, "new_status": "missing", "base_reason": row.get("reason"),
                "new_reason": "case absent from the new run(s): the run stopped or lost it"}
    return {**entry, "base_status": "missing", "new_status": status,
            "base_reason": "case absent from the base run(s)", "new_reason": row.get("reason")}


def absent_in(case: str, runs: list[Run]) -> list[str]:
    """The runs of a side that lack ``case`` while another run of that side has it."""
    return [r.run_id for r in runs if case not in r.rows]


def lost_in_some(case: str, brows: list[dict], c: dict | None, absent: list[str], runs_new: int) -> dict:
    """A case every base run has and some new runs lack: lost there, a regression, whatever the
    runs that have it say (judging it from those alone would hide a run that stopped on it)."""
    why = (f"case absent from {len(absent)} of {runs_new} new run(s) "
           f"({', '.join(absent[:3])}): the run stopped or lost it")
    if c:
        return {**c, "change": "regressed", "new_reason": f"{why}; {c.get('new_reason') or ''}".rstrip("; ")}
    return {"case": case, "suite": brows[0].get("suite"), "change": "regressed",
            "base_status": brows[0].get("status") or "error", "new_status": "missing",
            "base_reason": brows[0].get("reason"), "new_reason": why}
