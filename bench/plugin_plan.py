"""The plugin's expectations and time plan: the known-failure manifest read at configure time,
each case's outcome judged against its expectation (bench.core.expectations), and the run's time
plan made at collection and carried to each row (bench.core.plan)."""
from __future__ import annotations

import dataclasses

import pytest

from bench.core.rows import Row

KNOWN_KEY = pytest.StashKey[tuple]()        # (manifest entries, the stack their scopes are judged on)
PLAN_KEY = pytest.StashKey["object"]()      # the run's time plan (bench.core.plan.Plan)
DECISION_KEY = pytest.StashKey["object"]()  # one case's decision in it


def known_failures(config, state) -> tuple:
    """The known-failure manifest (repository's, then the user's files); an unreadable one is a
    usage error naming the file, entry and field. Entries worth re-checking become notes."""
    from bench.core import expectations

    try:
        entries = expectations.load_all(config.rootpath, config.getoption("bench_known_failures"))
    except expectations.ManifestError as exc:
        raise pytest.UsageError(f"--bench-known-failures: {exc}") from None
    stack = expectations.stack_versions()
    state.notes.extend(expectations.stale(entries, stack))
    return entries, stack


def plan_run(config, items, session, state) -> None:
    """The run's time plan (bench.core.plan) over the cases that will run: a left-out case is
    skipped saying why and what times it; the others carry their decision to their row."""
    from bench.core.plan import make_plan, this_machine

    profile, machine, planned = session.profile, this_machine(), []
    entries, _ = config.stash[KNOWN_KEY]
    for item in items:
        marker = item.get_closest_marker("bench_row")
        if marker is None or any(m.name == "skip" for m in item.iter_markers()):
            continue
        keys = dict(marker.kwargs)
        cost = estimate_of(keys["suite"])(keys, profile, machine)
        # a case a manifest entry selects is kept, whatever the entry's scope (so the plan does not
        # depend on the installed versions): the report says the day upstream fixes it
        if any(e.selects({**keys, "test": item.nodeid}) for e in entries):
            cost = dataclasses.replace(cost, essential=True)
        planned.append((item.nodeid, keys["suite"], cost))
    budget = config.getoption("bench_time_budget")
    if budget is not None and not 0 <= budget < float("inf"):  # NaN fails both
        raise pytest.UsageError(f"--bench-time-budget {budget:g}: valid: seconds > 0, or 0 for no ceiling")
    # the profiles' budgets are for a CPU (their estimates were measured on one); a CUDA machine
    # runs the profile whole unless --bench-time-budget says otherwise
    default = None if machine.cuda else profile.run_budget_s
    budget = default if budget is None else (budget or None)
    plan = make_plan(planned, budget, "--bench-time-budget 0 (or a larger budget)")
    config.stash[PLAN_KEY] = plan
    state.plan = {"budget_s": plan.budget_s, "estimate_s": round(plan.total_s, 1),
                  "machine": dataclasses.asdict(machine), "summary": plan.summary()}
    by_id = {item.nodeid: item for item in items}
    for d in plan.decisions:
        by_id[d.case].stash[DECISION_KEY] = d
        if d.action == "left_out":
            by_id[d.case].add_marker(pytest.mark.skip(reason=d.note))


def estimate_of(suite: str):
    """The ``estimate(case, profile, machine) -> Cost`` a question's scenario declares
    (bench.core.question.QUESTIONS), guarded: a case it cannot read (a user's model) gets the default."""
    import importlib

    from bench.core.plan import default_cost
    from bench.core.question import QUESTIONS

    module = QUESTIONS.get(suite)
    try:
        fn = getattr(importlib.import_module(module), "estimate", None) if module else None
    except ImportError:  # a plugin question without a scenario module: planned as a small case
        fn = None
    if fn is None:
        return default_cost

    def guarded(case, profile, machine):
        try:
            return fn(case, profile, machine)
        except (KeyError, TypeError, ValueError):
            return default_cost(case, profile, machine)

    return guarded


def new_row(item, keys: dict) -> Row:
    """A case's report row, with its decision in the run's time plan."""
    row = Row(test=item.nodeid, **keys)
    decision = item.stash.get(DECISION_KEY, None)
    if decision is not None:
        row.update(plan=decision.action, plan_estimate_s=decision.estimate_s)
        if decision.note:
            row["plan_note"] = decision.note
    return row


def judge_expected(item, call, report, row: Row) -> None:
    """A case with an expectation (declared by its model, or a known-failure manifest entry in
    scope): failing as expected is ``known_failure`` and shown as pytest's XFAIL (exit 0);
    failing otherwise stays a failure; passing is ``fixed_upstream`` (a failure only under
    --bench-strict-known-failures, as PyTorch's IMPROVED under a strict accuracy check)."""
    from bench.core import expectations

    entries, stack = item.config.stash[KNOWN_KEY]
    excinfo = getattr(call, "excinfo", None)
    text = f"{excinfo.typename}: {excinfo.value}" if excinfo is not None else ""
    expected = row.expectation or expectations.for_row(entries, row, stack, text)
    if expected is None or (report.when != "call" and report.passed):
        return
    verdict = expectations.judge(row, expected, text)
    if verdict == "known":
        report.outcome, report.wasxfail = "skipped", row["reason"][:500]
    elif verdict == "different" and not report.failed:
        report.outcome, report.longrepr = "failed", row["reason"]
    elif verdict == "fixed" and item.config.getoption("bench_strict_known_failures"):
        report.outcome, report.longrepr = "failed", f"[--bench-strict-known-failures] {row['reason']}"
