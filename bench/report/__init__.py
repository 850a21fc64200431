"""Report pipeline: a results file (pytest-benchmark JSON + bench's rows) -> report folder."""
from __future__ import annotations

from pathlib import Path

from bench.core.question import adopt
from bench.report.html import render_html
from bench.report.io import (
    ResultsError,
    atomic_write_json,
    atomic_write_text,
    load_results,
    replace_dir,
)
from bench.report.markdown import render_summary
from bench.report.tables import derive_notes, rows_from_results, suite_tables

__all__ = ["ResultsError", "build_report", "load_results", "publish_latest"]


def fingerprint_of(data: dict) -> dict:
    info = data.get("machine_info") or {}
    return info.get("bench") or {k: v for k, v in info.items() if not isinstance(v, dict)}


def build_report(data: dict, out_dir: str | Path, write_results: bool = True) -> dict:
    """Write summary.md, index.html, one CSV per suite and (unless ``write_results`` is
    False) results.json into ``out_dir``. Returns the tables. Each file is written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adopt((data.get("bench_run") or {}).get("questions"))  # a plugin's questions, as the run declared them
    rows = rows_from_results(data)
    tables = suite_tables(rows)
    run = dict(data.get("bench_run") or {})
    run.setdefault("run_id", out.name)
    notes = list(run.get("notes") or []) + derive_notes(rows)
    if rows and all(r.get("status") == "skipped" for r in rows):
        notes.append("every case was skipped: nothing was measured")
    fp = fingerprint_of(data)
    for suite, df in tables.items():
        atomic_write_text(out / f"{suite}.csv", df.to_csv(index=False))
    atomic_write_text(out / "summary.md", render_summary(tables, fp, run, notes))
    atomic_write_text(out / "index.html", render_html(tables, fp, run, notes, rows))
    if write_results:
        atomic_write_json(out / "results.json", data)
    return tables


def publish_latest(run_dir: Path) -> Path:
    """Copy a finished run folder to ``reports/latest`` atomically."""
    latest = run_dir.parent / "latest"
    replace_dir(run_dir, latest)
    return latest
