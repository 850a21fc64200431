"""One declaration per question: what a suite asks, read by everything that serves it.

Each question package (``bench/<package>/question.py``) declares a :class:`Question`: its report
name, suite file, CSV columns, judged metrics, headline columns and its scenario module. The
registry discovers the built-in ones; a plugin (``--bench-plugin MODULE``) adds its own with
:func:`register`. The report's tables and headline, ``compare`` and ``history``, the run's time
plan, the layer test and the README's layout read them through the views below
(``SUITE_COLUMNS``, ``METRICS``, ``HEADLINE``, ``QUESTIONS``), so adding a question is one new
package and one suite file. A results file records its questions (``bench_run.questions``), so
``compare`` judges a plugin's question without loading the plugin.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.core.metrics import Metric

KINDS = ("timing", "value", "derived", "exact", "counted")


@dataclasses.dataclass(frozen=True)
class Question:
    """A suite's question. ``columns``: the leading CSV columns (the contract; ``status`` and
    ``reason`` among them); ``metrics``: every judged column; ``headline``: the columns of the
    report's table for it; ``scenario``: the module with ``cases`` / ``run_case`` / ``Config`` /
    ``run`` (``bench.core.face``); ``order``: its place in reports; ``errors``: its error
    columns (distances from eager, fp64 or one process), whose growth ``compare`` reports as
    numeric drift while still inside tolerance; ``figures`` / ``charts``: ``"module:function"``
    of the question's own headline figures (its table -> ``[(what, value, case)]``) and report
    charts (its table and rows -> ``[(title, png)]``), for what its rows mean together (a rate
    sweep's capacity, say) that no single row says."""

    name: str
    summary: str
    suite_file: str
    scenario: str
    columns: tuple[str, ...]
    metrics: Mapping[str, Metric]
    headline: tuple[str, ...]
    order: int = 100
    errors: tuple[str, ...] = ()
    figures: str | None = None
    charts: str | None = None

    def __post_init__(self):
        where = f"question {self.name!r}"
        if not self.name.isidentifier():
            raise ValueError(f"{where}: the name must be an identifier (it names a CSV and a table)")
        for need in ("status", "reason"):
            if need not in self.columns:
                raise ValueError(f"{where}: columns must include {need!r}")
        for name, m in self.metrics.items():
            if m.kind not in KINDS or m.better not in ("lower", "higher"):
                raise ValueError(
                    f"{where}: metric {name!r}: kind {m.kind!r} / better {m.better!r}; valid kinds: "
                    f"{', '.join(KINDS)}; better: lower, higher"
                )
        for hook in (self.figures, self.charts):
            if hook is not None and hook.count(":") != 1:
                raise ValueError(f"{where}: {hook!r} must name 'module:function'")
        if "status" not in self.headline:
            raise ValueError(f"{where}: the headline (the report's table) must show 'status'")

    def hook(self, which: str) -> Callable | None:
        """The question's ``figures`` or ``charts`` function, None where it declares none or
        its module does not import here (a results file's plugin question, say)."""
        path = getattr(self, which)
        if path is None:
            return None
        module, _, name = path.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "metrics": {k: dataclasses.asdict(m) for k, m in self.metrics.items()}}

    @classmethod
    def from_json(cls, data: dict) -> Question:
        return cls(
            **{
                **data,
                "columns": tuple(data["columns"]),
                "headline": tuple(data["headline"]),
                "errors": tuple(data.get("errors") or ()),
                "metrics": {k: Metric(**m) for k, m in data["metrics"].items()},
            }
        )


_REGISTRY: dict[str, Question] = {}
_DISCOVERED = False


def register(question: Question) -> Question:
    """Add a question (a plugin's); the same declaration again is a no-op, another one with a
    taken name is an error."""
    have = _REGISTRY.get(question.name)
    if have is not None and have != question:
        raise ValueError(f"question {question.name!r} is declared twice ({have.scenario}, {question.scenario})")
    _REGISTRY[question.name] = question
    return question


def discover() -> None:
    """Import every ``bench.<package>.question`` once (each registers its ``QUESTION``)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import bench

    root = Path(bench.__path__[0])
    for info in pkgutil.iter_modules(bench.__path__):  # by file, so no other package is imported
        if info.ispkg and info.name != "core" and (root / info.name / "question.py").is_file():
            register(importlib.import_module(f"bench.{info.name}.question").QUESTION)
    _DISCOVERED = True  # only once every declaration loaded: a failed import fails again, loudly


def questions() -> dict[str, Question]:
    """Every known question, in report order."""
    discover()
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


def builtin_names() -> tuple[str, ...]:
    return tuple(n for n, q in questions().items() if q.scenario.startswith("bench."))


def record(names) -> dict:
    """The declarations of the questions ``names`` for a results file (``bench_run.questions``)."""
    known = questions()
    return {n: known[n].to_json() for n in names if n in known}


def adopt(recorded: dict) -> None:
    """Register the questions a results file recorded that this process does not know (a
    plugin's), so their rows are judged; a known one keeps this code's declaration."""
    known = questions()
    for name, data in (recorded or {}).items():
        if name not in known:
            try:
                register(Question.from_json(data))
            except (TypeError, ValueError, KeyError):
                continue  # a malformed record: its rows are judged as plain rows


def reports_table() -> str:
    """The rows of ``reports/README.md``'s table for each question's CSV, from the declarations
    (``scripts/reports_readme.py`` writes them between the file's markers)."""
    return "\n".join(f"| `<run-id>/{q.name}.csv` | {q.summary} Leading columns: "
                     f"{', '.join(f'`{c}`' for c in q.columns)} |" for q in questions().values()
                     if q.scenario.startswith("bench."))


class _View(Mapping):
    """A read-only mapping question name -> one field of its declaration, always current."""

    def __init__(self, field: Callable[[Question], object]):
        self._field = field

    def __getitem__(self, name):  # a lookup (per row, per metric): the registry as is, no re-sorting
        discover()
        return self._field(_REGISTRY[name])

    def __iter__(self):  # report order
        return iter(questions())

    def __len__(self):
        discover()
        return len(_REGISTRY)


SUITE_COLUMNS: Mapping[str, tuple[str, ...]] = _View(lambda q: q.columns)
METRICS: Mapping[str, Mapping[str, Metric]] = _View(lambda q: q.metrics)
HEADLINE: Mapping[str, tuple[str, ...]] = _View(lambda q: q.headline)
QUESTIONS: Mapping[str, str] = _View(lambda q: q.scenario)
ERRORS: Mapping[str, tuple[str, ...]] = _View(lambda q: q.errors)
