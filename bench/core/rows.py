"""Result rows: one per case, whatever happened to it.

A row is created for every collected case that declares one (``bench_row`` marker), so a
case that is skipped, fails, runs out of memory or never reaches the timer is still in the
report with a status and a reason (a failed case that vanishes from a report hides the failure).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bench.core.metrics import INSTRUCTIONS_NOISE, TIMING_OTHER, Metric  # noqa: F401  (re-exported)
from bench.core.question import ERRORS, METRICS, SUITE_COLUMNS  # noqa: F401  (re-exported)


@dataclasses.dataclass(frozen=True)
class Status:
    """One status a row can end with. ``severity``: how bad (higher is worse; compare, history
    and the headline order and judge by it); ``failure``: a failure of this run (the headline's
    NOT GOOD, exit 1); ``passed``: the case ran and its checks held (its metrics count)."""

    name: str
    severity: float
    failure: bool
    passed: bool
    doc: str


# The one declaration of statuses, in display order. ``known_failure``: the case failed as a
# known upstream bug (known_failures.toml) or a model's declared pitfall says it does: not a
# failure of this run, yet worse than ok (``ok -> known_failure`` under an upgrade is a
# regression, and a known failure that turns into another error is too); ``fixed_upstream``: the
# case passed although an entry expected it to fail, as good as ok (its metrics count like ok's).
STATUS_TABLE = (
    Status("ok", 0, False, True, "ran and every check held"),
    Status("mismatch", 4, True, False, "ran and computed something else than its reference"),
    Status("unsupported", 2, False, False, "this stack refuses the case (a mode, dtype or feature it lacks)"),
    Status("error", 5, True, False, "raised, crashed or timed out"),
    Status("oom", 3, True, False, "ran out of memory"),
    Status("skipped", 1, False, False, "not run: hardware, profile or options (the reason says which)"),
    Status("known_failure", 2.5, False, False, "failed as a known upstream bug or a declared pitfall says"),
    Status("fixed_upstream", 0, False, True, "passed although a known-failure entry expected it to fail"),
)
STATUSES = tuple(s.name for s in STATUS_TABLE)
SEVERITY = {s.name: s.severity for s in STATUS_TABLE}
FAILURES = tuple(s.name for s in STATUS_TABLE if s.failure)
PASSED = tuple(s.name for s in STATUS_TABLE if s.passed)
UNKNOWN_SEVERITY = max(SEVERITY.values()) + 1  # a status this code does not know (a newer file): worst


def severity(status) -> float:
    """How bad ``status`` is; an unknown one is worse than every known status."""
    return SEVERITY.get(status, UNKNOWN_SEVERITY)


def passed(status) -> bool:
    """Whether a row's status means the case ran and its checks held (its metrics count)."""
    return status in PASSED


# The version of results.json's shape (``bench_run.schema``). 1: files written before the
# field existed; 2: plain checks get rows (``check``), rows carry ``foreign_cpu_share``, timed
# rows their budget (``rounds_planned``, ``warmup_rounds``); 3: generation's ``attention``,
# ``kv_cache_bytes_per_token``, ``first_diff_pos`` and sharded's ``checkpointing`` and strategy
# ``fsdp`` (were ``attn``, ``kv_bytes_per_token``, ``first_diff_position``, ``checkpoint``,
# ``fsdp2``). Readers upgrade older files on
# read (``bench.report.io.upgrade``) and refuse newer ones: asv versions its results files the
# same way (``api_version``, upgraded on load).
RESULTS_SCHEMA = 3

# Each question's CSV columns and judged metrics are declared in its package
# (``bench/<package>/question.py``) and read through these views (``bench.core.question``).
def declared_metrics(suite: str | None) -> dict[str, Metric]:
    """The judged metrics of a suite's rows (suite ``other``: a plain benchmark's median)."""
    return {"median_ms": TIMING_OTHER} if suite in (None, "other") else METRICS.get(suite, {})


def metric_of(suite: str | None, name: str) -> Metric:
    return declared_metrics(suite).get(name) or TIMING_OTHER


def error_columns(suite: str | None) -> tuple[str, ...]:
    """A suite's error columns (its question's ``errors``): growth beyond DRIFT_FACTOR x (and
    above DRIFT_FLOOR) is reported as numeric drift even while inside tolerance: a warning,
    not a regression."""
    return ERRORS.get(suite, ()) if suite else ()


DRIFT_FACTOR = 10.0
DRIFT_FLOOR = 1e-7


# Physical bounds: a value beyond one cannot be true (more than a roof's or the vendor's peak,
# a weak-scaling efficiency above ~1.1 where cache effects end). It says the timing behind it
# is wrong (a baseline timed while the machine was busy, a roof measured on a slower kernel):
# the row names it (``implausible``) and the headline never shows it as a best figure.
PHYSICAL_BOUNDS = {"pct_of_peak": 100.0, "pct_of_vendor_peak": 100.0, "mfu_pct": 100.0,
                   "scaling_efficiency": 1.1, "scaling_efficiency_vs_ddp1": 1.1}


def add_reference_twins(row: dict) -> None:
    """``X_norm = X / reference_ms`` for each declared ``*_norm`` metric of the row's suite whose
    timing column ``X`` and the interleaved reference (``bench.core.reference``) are both there."""
    ref = row.get("reference_ms")
    if not isinstance(ref, (int, float)) or not ref > 0:
        return
    for name in declared_metrics(row.get("suite")):
        value = row.get(name.removesuffix("_norm"))
        if name.endswith("_norm") and isinstance(value, (int, float)) and value == value:
            row[name] = value / ref


def implausible(row: dict) -> str:
    """The values of ``row`` beyond their physical bound, as text ("" when none)."""
    out = []
    for col, bound in PHYSICAL_BOUNDS.items():
        value = row.get(col)
        if isinstance(value, (int, float)) and value == value and value > bound:
            out.append(f"{col} {value:.3g} > {bound:g}")
    return "; ".join(out)


class CaseEnded(pytest.skip.Exception):
    """Raised by :meth:`Row.end` to stop a case that has a final non-ok status (oom,
    unsupported): pytest shows it as skipped, the row keeps the real status."""


class Row(dict):
    """A dict of report columns with a status. Tests fill metrics; the plugin sets the
    final status from the test's outcome unless the test already set one."""

    def __init__(self, suite: str, test: str, **keys: Any):
        if suite not in SUITE_COLUMNS:
            raise ValueError(f"unknown suite {suite!r}; valid: {', '.join(SUITE_COLUMNS)}")
        super().__init__(suite=suite, test=test, status=None, reason=None, **keys)
        self.expectation = None  # a status the case declares it is built to show (bench.core.expectations)

    def expect(self, expectation) -> None:
        """Declare how this case is expected to end (a model built to show a pitfall): the
        plugin judges the outcome against it as it judges the known-failure manifest's entries."""
        self.expectation = expectation

    def set_status(self, status: str, reason: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
        if status != "ok" and not reason:
            raise ValueError(f"status {status!r} needs a reason")
        self["status"], self["reason"] = status, reason

    def check(self, condition: bool, reason: str, status: str = "mismatch") -> None:
        """Assert a correctness condition; on failure the row says ``status`` and why."""
        if not condition:
            self.set_status(status, reason)
            raise AssertionError(f"{status}: {reason}")

    def end(self, status: str, reason: str):
        """Stop the case with a final non-ok status (e.g. ``oom``); the run goes on."""
        self.set_status(status, reason)
        raise CaseEnded(f"{status}: {reason}", _use_item_location=True)

    def finalize(self, outcome: str, message: str | None) -> None:
        """Set the status from the pytest outcome unless the test set one itself."""
        add_reference_twins(self)
        beyond = implausible(self)
        if beyond:
            self["implausible"] = beyond + " (impossible: the timing behind it is suspect)"
        if self["status"] not in (None, "ok"):
            return
        if outcome == "passed":
            self["status"], self["reason"] = "ok", None
        elif outcome == "skipped":
            self["status"], self["reason"] = "skipped", message or "skipped"
        else:
            self["status"], self["reason"] = "error", message or "test failed"
