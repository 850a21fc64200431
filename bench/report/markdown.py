"""summary.md: GitHub-flavoured Markdown for a CI job summary or a PR comment.
Failures first, then headline numbers, then the environment."""
from __future__ import annotations

import pandas as pd

from bench.results import SUITE_COLUMNS

# Columns shown per suite in the summary (the CSVs have all of them).
HEADLINE = {
    "autograd_ops": ("op", "device", "dtype", "status", "checks_passed", "fwd_bwd_median_ms", "speedup_vs_native"),
    "graph_modes": ("model", "mode", "device", "phase", "status", "max_abs_err", "median_ms", "speedup_vs_eager"),
    "devices": ("model", "device", "dtype", "phase", "batch_size", "status", "median_ms", "samples_per_s",
                "tflops", "pct_of_peak"),
    "ddp": ("model", "backend", "world_size", "status", "step_ms_p50", "samples_per_s", "scaling_efficiency",
            "grad_max_abs_diff"),
    "trainer": ("model", "runner", "device", "precision", "batch_size", "grad_accum", "world_size", "optim",
                "status", "samples_per_s", "step_ms_p50", "loss_first", "loss_last", "eval_accuracy", "mfu_pct"),
}
BAD = ("error", "mismatch", "oom", "unsupported")
FAILED = ("error", "mismatch", "oom")


def _md(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_"
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=".4g", missingval="")


def _case(row: pd.Series, suite: str) -> str:
    keys = [k for k in SUITE_COLUMNS.get(suite, ()) if k not in ("status", "reason")][:5]
    return " / ".join(str(row[k]) for k in keys if k in row and pd.notna(row[k]))


def render_summary(tables: dict[str, pd.DataFrame], fingerprint: dict, run: dict, notes: list[str]) -> str:
    lines = [f"# Benchmark report `{run.get('run_id', '?')}`", ""]
    total = sum(len(t) for t in tables.values())
    bad_rows, limits, skipped_rows = [], [], []
    for suite, df in tables.items():
        for _, row in df.iterrows():
            reason = str(row["reason"])
            expected = reason.startswith("expected:")
            target = (bad_rows if row["status"] in FAILED and not expected else
                      limits if row["status"] in BAD else skipped_rows if row["status"] == "skipped" else None)
            if target is not None:
                target.append({"suite": suite, "case": _case(row, suite), "status": row["status"],
                               "reason": reason[:300]})
    counts = {s: sum(int((t["status"] == s).sum()) for t in tables.values()) for s in ("ok", *BAD, "skipped")}
    lines.append(f"profile **{run.get('profile', '?')}**, {total} rows: "
                 + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if not run.get("complete", True):
        lines += ["", "> **Incomplete run**: interrupted or still running; rows below are those that finished."]
    for note in notes:
        lines += ["", f"> **Warning**: {note}"]
    lines += ["", "## Failures", "", _md(pd.DataFrame(bad_rows)) if bad_rows else "None."]
    if limits:
        lines += ["", "## Unsupported and expected findings",
                  "", "Graphs a tool cannot build, and results a model is built to show (e.g. trace pitfalls).",
                  "", _md(pd.DataFrame(limits))]
    for suite, df in tables.items():
        cols = [c for c in HEADLINE.get(suite, df.columns) if c in df.columns]
        lines += ["", f"## {suite}", "", _md(df[cols])]
    if skipped_rows:
        lines += ["", "## Skipped", "", _md(pd.DataFrame(skipped_rows))]
    env = {k: v for k, v in fingerprint.items() if v not in (None, {}, "")}
    lines += ["", "## Environment", "", _md(pd.DataFrame({"key": list(env), "value": [str(v) for v in env.values()]}))]
    return "\n".join(lines) + "\n"
