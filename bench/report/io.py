"""Atomic writes and reading results files.

A report is never half-written: every file is written to a temporary name in the same
folder and renamed into place, which is atomic on POSIX file systems.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.core.files import _clean, atomic_write_json, atomic_write_text  # noqa: F401  (re-exported)
from bench.core.rows import RESULTS_SCHEMA


class ResultsError(Exception):
    """A results file that is missing, unreadable or not a results file."""


def replace_dir(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src``; readers see the old or the new folder, never a mix."""
    tmp = dst.with_name(f".{dst.name}.new")
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def load_results(path: str | Path) -> dict:
    """Load a results.json or a plain pytest-benchmark JSON file, or raise ResultsError."""
    path = Path(path)
    if path.is_dir():
        inside = path / "results.json"
        raise ResultsError(f"{path}: is a folder, not a results file"
                           + (f"; give {inside}" if inside.is_file() else " (give a run's results.json)"))
    if not path.is_file():
        raise ResultsError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON (truncated or corrupted?) at line {exc.lineno}: "
                           f"{exc.msg}") from None
    if not isinstance(data, dict) or not ("benchmarks" in data or "bench_rows" in data):
        raise ResultsError(f"{path}: not a pytest-benchmark or bench results file (no 'benchmarks' or 'bench_rows')")
    if not isinstance(data.get("benchmarks", []), list) or not isinstance(data.get("bench_rows", []), list):
        raise ResultsError(f"{path}: 'benchmarks' and 'bench_rows' must be lists")
    return upgrade(data, path)


# 2 -> 3: columns renamed to the names the README documents (a reader of an older file finds
# today's names, and compare matches its cases with today's)
RENAMED_IN_3 = {
    "generation": {"attn": "attention", "kv_bytes_per_token": "kv_cache_bytes_per_token",
                   "kv_bytes_formula": "kv_cache_bytes_formula", "kv_bytes_ratio": "kv_cache_bytes_ratio",
                   "first_diff_position": "first_diff_pos"},
    "sharded": {"checkpoint": "checkpointing"},
}


def _renamed_row(r: dict, suite: str | None = None) -> dict:
    """A row (or a case's params, whose ``suite`` is given) with schema 3's names."""
    suite = suite or r.get("suite")
    r = {RENAMED_IN_3.get(suite, {}).get(k, k): v for k, v in r.items()}
    if suite == "sharded" and r.get("strategy") == "fsdp2":
        r["strategy"] = "fsdp"
    return r


def _to_schema_3(data: dict) -> dict:
    """Sharded strategy ``fsdp2`` is ``fsdp`` (FSDP2 is how it is built, not what it is called),
    in the rows and in the case ids of the rows and the benchmarks; the benchmarks' own copies
    of the rows (``extra_info``, which a plain pytest-benchmark file is read from) and their
    case parameters (``params``) get the new names too. Idempotent: today's files hold none of
    the old names."""
    def case_id(name, sharded=False):
        return name.replace("fsdp2-", "fsdp-") if isinstance(name, str) and sharded else name

    benchmarks = []
    for b in data.get("benchmarks", []):
        sharded = "test_sharded" in str(b.get("fullname"))
        b = {**b, **{k: case_id(b[k], sharded) for k in ("fullname", "name", "param") if k in b}}
        if isinstance(b.get("extra_info"), dict) and "suite" in b["extra_info"]:
            b["extra_info"] = _renamed_row(b["extra_info"])
        if isinstance(b.get("params"), dict):  # a case's keys, without the suite: the row's
            suite = (b.get("extra_info") or {}).get("suite")
            b["params"] = {k: _renamed_row(v, suite) if isinstance(v, dict) else v for k, v in b["params"].items()}
        benchmarks.append(b)
    out = {**data, "benchmarks": benchmarks}
    if "bench_rows" in data:
        out["bench_rows"] = [{**r, "test": case_id(r.get("test"), "test_sharded" in str(r.get("test")))}
                             for r in map(_renamed_row, data["bench_rows"])]
    return out


def upgrade(data: dict, path: str | Path = "results") -> dict:
    """A results file in today's shape: older schemas are upgraded (1 -> 2 adds nothing a
    reader needs: the new columns are optional; 2 -> 3 renames columns, ``RENAMED_IN_3``),
    newer ones refused with one line."""
    run = data.get("bench_run")
    if not isinstance(run, dict):  # a plain pytest-benchmark file (its rows in extra_info): no run to version
        return _to_schema_3(data)
    schema = run.get("schema", 1)
    if not isinstance(schema, int) or schema < 1:
        raise ResultsError(f"{path}: bench_run.schema {schema!r} is not a schema version (a positive integer)")
    if schema > RESULTS_SCHEMA:
        raise ResultsError(f"{path}: written by a newer torch-hf-bench (results schema {schema}; this version reads "
                           f"up to {RESULTS_SCHEMA}): upgrade torch-hf-bench to read it")
    if schema < 3:
        data = _to_schema_3(data)
    if schema < RESULTS_SCHEMA:
        run = {**run, "schema": RESULTS_SCHEMA, "upgraded_from": schema}
    return {**data, "bench_run": run}
