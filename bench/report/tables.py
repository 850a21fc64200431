"""Results -> pandas tables, one per suite."""
from __future__ import annotations

import pandas as pd

from bench.core.rows import PASSED, STATUSES, SUITE_COLUMNS, passed


def rows_from_results(data: dict) -> list[dict]:
    """The rows of a results file. A plain pytest-benchmark JSON has no ``bench_rows``:
    its rows are rebuilt from each benchmark's ``extra_info`` and stats."""
    if data.get("bench_rows"):
        return [dict(r) for r in data["bench_rows"]]
    rows = []
    for bench in data.get("benchmarks", []):
        extra = dict(bench.get("extra_info") or {})
        if "suite" not in extra:
            continue
        stats = bench.get("stats") or {}
        row = {"test": bench.get("fullname"), **extra}
        if "median" in stats:
            row.setdefault("median_ms", stats["median"] * 1e3)
        row.setdefault("status", "ok")
        rows.append(row)
    return rows


def suite_tables(rows: list[dict]) -> dict[str, pd.DataFrame]:
    """One DataFrame per suite, contract columns first, list-valued columns dropped."""
    by_suite: dict[str, list[dict]] = {}
    for row in rows:
        by_suite.setdefault(row.get("suite", "other"), []).append(row)
    tables = {}
    for suite, suite_rows in by_suite.items():
        flat = [_known_status({k: v for k, v in r.items() if not isinstance(v, (list, dict)) and k != "suite"})
                for r in suite_rows]
        df = pd.DataFrame(flat)
        # every leading column, filled or not: a reader of the CSV finds the same header in every
        # run (a suite whose rows were all skipped still has its samples_per_s column, empty)
        lead = list(SUITE_COLUMNS.get(suite, ("status", "reason")))
        for c in lead:
            if c not in df.columns:
                df[c] = None
        rest = [c for c in df.columns if c not in lead and c != "test"]
        df = df[lead + rest + (["test"] if "test" in df.columns else [])]
        tables[suite] = derive_columns(suite, df.reset_index(drop=True))
    return tables


def _known_status(row: dict) -> dict:
    """A row whose status is missing or not one this version knows (a hand-edited or newer
    file) is reported as an ``error`` saying so: never dropped from the headline's counts."""
    status = row.get("status")
    if isinstance(status, str) and status in STATUSES:
        return row
    why = f"status {status!r} is not one this version knows (valid: {', '.join(STATUSES)}), reported as error"
    return {**row, "status": "error", "reason": why + (f"; its reason: {row['reason']}" if row.get("reason") else "")}


def derive_columns(suite: str, df: pd.DataFrame) -> pd.DataFrame:
    """Columns that compare rows with each other, filled once all rows are in."""
    if suite == "devices" and {"device", "median_ms"} <= set(df.columns):
        keys = ["model", "dtype", "phase", "batch_size"]
        cpu = df[(df["device"] == "cpu") & df["status"].isin(PASSED)].set_index(keys)["median_ms"]
        speedups = []
        for _, row in df.iterrows():
            key = tuple(row[k] for k in keys)
            ok = passed(row["status"]) and row["device"] != "cpu" and key in cpu.index
            speedups.append(float(cpu.loc[key]) / row["median_ms"] if ok and row["median_ms"] else None)
        df["speedup_vs_cpu"] = speedups
    return df


def derive_notes(rows: list[dict]) -> list[str]:
    """Warnings for the top of the summary: a failed timing self-check (this machine's
    timings are not trustworthy), and rows that ran on something other than asked."""
    notes = []
    for r in rows:
        if r.get("phase") in ("calibration", "cuda_events_check") and r.get("status") not in ("ok", "skipped"):
            notes.append(f"timing self-check FAILED on {r.get('device')}: {r.get('reason')}. Timings of this "
                         "run are not trustworthy.")
        if r.get("note"):
            notes.append(f"{r.get('suite')} {r.get('test', '').split('::')[-1]}: {r['note']}")
    return notes
