"""One declaration per question: a toy question added as one package and one suite file reaches
the CSV, the HTML table, the summary and ``compare`` (in a process that never loads the plugin)
with no edit anywhere else; the built-in questions' declarations drive the report tables (the
sharded table shows its columns) and ``reports/README.md``."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.core.question import HEADLINE, METRICS, QUESTIONS, SUITE_COLUMNS, Question, questions
from bench.report import build_report

ROOT = Path(__file__).resolve().parents[1]

TOY_QUESTION = '''
from bench.core.metrics import Metric
from bench.core.question import Question, register

QUESTION = register(Question(
    name="toy", summary="how many errors does a toy make, and how fast is it?", suite_file="test_toy.py",
    scenario="toyq.scenario", columns=("thing", "status", "reason", "toy_errors", "toy_ms"),
    metrics={"toy_errors": Metric("count", "lower", "exact", 0.0, "errors a toy makes"),
             "toy_ms": Metric("ms", "lower", "value", 0.10, "a toy's time")},
    headline=("thing", "status", "toy_errors", "toy_ms")))
'''
TOY_SUITE = '''
import os
import pytest
from bench.core.profiles import case


@pytest.mark.parametrize("c", [case("toy", thing="ball"), case("toy", thing="kite")])
def test_toy(c, bench_row, benchmark):
    bench_row.update(toy_errors=int(os.environ["TOY_ERRORS"]), toy_ms=5.0, extra_col=1)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
'''


def _run(folder: Path, out: Path, errors: int) -> None:
    env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}", "TOY_ERRORS": str(errors)}
    done = subprocess.run([sys.executable, "-m", "pytest", "test_toy.py", "--benchmark-only", "-q",
                           "-p", "no:cacheprovider", "--bench-plugin", "toyq.question", f"--bench-report-dir={out}"],
                          cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_toy_question_reaches_the_csv_the_html_table_the_summary_and_compare(tmp_path):
    (tmp_path / "toyq").mkdir()
    (tmp_path / "toyq" / "__init__.py").write_text("")
    (tmp_path / "toyq" / "question.py").write_text(TOY_QUESTION)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["bench.pytest_plugin"]\n')
    (tmp_path / "test_toy.py").write_text(TOY_SUITE)
    _run(tmp_path, tmp_path / "a", 0)
    _run(tmp_path, tmp_path / "b", 2)
    latest = tmp_path / "a" / "latest"
    csv = pd.read_csv(latest / "toy.csv")
    assert list(csv.columns[:5]) == ["thing", "status", "reason", "toy_errors", "toy_ms"] and len(csv) == 2
    page = (latest / "index.html").read_text()
    table = page[page.index("id=\"table-toy\""):].split("</table>")[0]
    assert all(f"<th title='click to sort'>{c}</th>" in table for c in ("thing", "toy_errors", "toy_ms"))
    assert "extra_col" not in table  # the declared table, not every column
    assert "toy" in (latest / "summary.md").read_text()
    results = json.loads((latest / "results.json").read_text())
    assert results["bench_run"]["questions"]["toy"]["metrics"]["toy_errors"]["kind"] == "exact"
    # compare in a process that cannot import the plugin: the results files carry the question
    done = subprocess.run([sys.executable, "-m", "bench", "compare", str(latest / "results.json"),
                           str(tmp_path / "b" / "latest" / "results.json"), "--format", "json"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    verdict = json.loads(done.stdout)
    toy = [m for m in verdict["metrics"] if m["metric"] == "toy_errors"]
    assert len(toy) == 2 and all(m["verdict"] == "regression" for m in toy)


def test_the_sharded_table_shows_its_declared_columns(tmp_path):
    """The sharded question had no report table declaration: index.html showed only `reason`."""
    row = {"suite": "sharded", "test": "suites/test_sharded.py::test_sharded[x]", "model": "llama",
           "strategy": "fsdp", "world_size": 2, "checkpointing": "none", "mp": "fp32", "device": "cpu",
           "status": "ok", "reason": None, "step_ms_p50": 12.5, "tokens_per_s": 900.0}
    build_report({"bench_rows": [row], "bench_run": {"run_id": "r"}}, tmp_path)
    page = (tmp_path / "index.html").read_text()
    table = page[page.index("id=\"table-sharded\""):].split("</table>")[0]
    assert "<th title='click to sort'>step_ms_p50</th>" in table and "<th title='click to sort'>strategy</th>" in table


def test_every_builtin_question_is_declared_once_and_read_through_the_views():
    qs = questions()
    assert list(qs)[:7] == ["autograd_ops", "graph_modes", "devices", "ddp", "trainer", "sharded", "generation"]
    for name, q in qs.items():
        assert SUITE_COLUMNS[name] == q.columns and METRICS[name] is q.metrics and HEADLINE[name] == q.headline
        assert QUESTIONS[name] == q.scenario and (ROOT / q.suite_file).is_file()
        assert (ROOT / Path(*q.scenario.split("."))).with_suffix(".py").is_file()
    assert Question.from_json(qs["devices"].to_json()) == qs["devices"]


def test_reports_readme_lists_every_question_csv_as_declared():
    from bench.core.question import reports_table

    text = (ROOT / "reports" / "README.md").read_text()
    assert reports_table() in text, "reports/README.md is stale: python scripts/reports_readme.py rewrites it"
    for q in questions().values():
        assert f"`<run-id>/{q.name}.csv`" in text


def test_a_question_that_misdeclares_itself_is_refused_with_what_is_valid():
    import pytest

    from bench.core.metrics import Metric

    with pytest.raises(ValueError, match="columns must include 'status'"):
        Question("q", "?", "t.py", "m", ("a", "reason"), {}, ("a", "status"))
    with pytest.raises(ValueError, match="valid kinds: timing, value, derived, exact, counted"):
        Question("q", "?", "t.py", "m", ("status", "reason"), {"x": Metric("ms", "lower", "speed")}, ("status",))


def test_the_readme_layout_table_has_a_row_for_every_question_package():
    readme = (ROOT / "README.md").read_text()
    for q in questions().values():
        if q.scenario.startswith("bench."):
            assert f"| `{'/'.join(q.scenario.split('.')[:2])}/` |" in readme, q.name


def test_statuses_and_dtypes_are_declared_once():
    """No module retypes the status vocabulary or the precision names: they come from
    bench.core.rows (STATUS_TABLE) and bench.core.hardware (DTYPES, PRECISIONS)."""
    import re

    literals = {
        r'\(\s*"fp32",\s*"bf16",\s*"fp16"\s*\)': "bench/core/hardware.py",
        r'"bf16":\s*torch\.bfloat16': "bench/core/hardware.py",
        r'"(?:error|mismatch|oom)",\s*"(?:error|mismatch|oom)"': "bench/core/rows.py",
        r'\b(?:STATUS_ORDER|BAD|FAILED)\s*=': None,
        r'"fixed_upstream":\s*0': None,
        r'["\']expected: ': None,
    }
    found = []
    for path in (ROOT / "bench").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        for pattern, home in literals.items():
            if rel != home and re.search(pattern, text):
                found.append(f"{rel}: {pattern}")
    assert not found, found
