"""The one face every question package shows (modelled on optimum-benchmark's
``Scenario[Config].run()``): its ``scenario`` module exposes

- ``cases(session) -> list``: the cases of the run's profile and devices (``case(...)`` params);
- ``run_case(case, benchmark, row, session)``: check, then time one case into ``row``
  (``benchmark``: pytest-benchmark's fixture, or None outside pytest);
- ``Config``: a frozen dataclass naming one case, which validates itself when built, and
  ``run(config, session=None) -> dict``: that case's report row, without pytest.

Suites only parametrize (``cases_from(scenario.cases)``), call ``run_case`` and assert; a new
question (generation, FSDP) is a new package with the same four names.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def run_as_row(suite: str, keys: dict[str, Any], run_case: Callable, session=None, **kwargs) -> dict:
    """Run one case outside pytest: the row a suite would write, with its status and reason
    (a failed check, an ended case or an exception all become the row's status)."""
    from bench.core.expectations import judge
    from bench.core.rows import CaseEnded, Row
    from bench.core.session import Session

    row, text = Row(suite, f"python:{suite}", **keys), ""
    try:
        run_case(dict(keys), None, row, session or Session(), **kwargs)
        row.finalize("passed", None)
    except (AssertionError, CaseEnded):
        row.finalize("failed", "a check failed")  # keeps the status and reason the check set
    except Exception as exc:  # the row says what went wrong; the caller's loop goes on
        text = f"{type(exc).__name__}: {exc}"
        row.finalize("failed", text[:300])
    if row.expectation is not None:  # what the case's model declares it shows, judged as under pytest
        judge(row, row.expectation, text)
    return dict(row)


def one_of(name: str, value: Any, valid) -> None:
    """A clear error for a Config field outside its valid values."""
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; valid: {', '.join(map(str, valid))}")
