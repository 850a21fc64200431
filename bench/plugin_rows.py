"""How the plugin turns a pytest item and its outcome into a report row: the row's keys (a
benchmark case's ``bench_row`` marker or a plain check's ``bench_check``), the outcome's
message, the raw samples, the weights check, and plain checks kept under --benchmark-only."""
from __future__ import annotations

import re

from bench.core.rows import Row
from bench.core.session import Session

ONLY_SKIP = "Skipping non-benchmark (--benchmark-only active)."


def row_keys(item) -> dict | None:
    """The keys of an item's report row: a benchmark case's ``bench_row`` marker, or a plain
    check's ``bench_check`` marker plus its scalar parameters (op, device, model); None
    when the item has no row."""
    marker = item.get_closest_marker("bench_row")
    if marker:
        return dict(marker.kwargs)
    check = item.get_closest_marker("bench_check")
    if not check:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    scalars = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool))}
    return {"suite": check.args[0], **check.kwargs, **scalars}


def run_checks_under_benchmark_only(item) -> None:
    """pytest-benchmark's --benchmark-only skips every test without the benchmark fixture; a
    report made with it must still carry the correctness checks, so a ``bench_check`` test
    keeps running (its row says what it found)."""
    if item.get_closest_marker("bench_check"):
        item.own_markers[:] = [m for m in item.own_markers
                               if not (m.name == "skip" and m.kwargs.get("reason") == ONLY_SKIP)]


def message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        # pytest writes a skip as "Skipped: why", a subclass of its skip as "package.module.Class: why":
        # the reader wants the why, never an internal class path
        return re.sub(r"^(Skipped|[\w.]*CaseEnded): ", "", str(report.longrepr[2]))
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:  # "package.module.Error: why" -> "Error: why": the class, not where it lives
        first = crash.message.strip().splitlines()[0][:500] if crash.message.strip() else "test failed"
        return re.sub(r"^(?:[a-z_]\w*\.)+(?=[A-Z]\w*: )", "", first)
    return str(report.longrepr).strip().splitlines()[-1][:500] if report.longrepr else ""


def flag_wrong_weights(report, row: Row, session: Session) -> None:
    """A row that ran weights other than the ones it names is not ``ok``: its status says
    so and the test fails, whatever it measured. The packaged MiniLM's hash is recorded
    in the session (and the report's environment) the first time a row names it."""
    from bench.models.text import MINILM_ROW_NAMES, packaged_minilm_weights, weights_problem

    if row.get("model") not in MINILM_ROW_NAMES:
        return
    problem = weights_problem(row.get("model"), packaged_minilm_weights(session))
    if problem:
        row.set_status("mismatch", problem)
        report.outcome, report.longrepr = "failed", f"mismatch: {problem}"


def take_samples(fixture, row: Row) -> None:
    """Fill the row's timing columns from pytest-benchmark's raw samples, unless the test
    already recorded them itself."""
    from bench.core.timing import summarize_ms

    stats = getattr(fixture, "stats", None)
    if stats is not None and stats.stats.data:
        for key, value in summarize_ms(list(stats.stats.data)).items():
            if row.get(key) is None:
                row[key] = value
