"""summary.md: GitHub-flavoured Markdown for a CI job summary or a PR comment. The verdict
and key numbers first, then failures, each suite's table, skipped cases by reason, and the
environment, folded."""
from __future__ import annotations

import pandas as pd

from bench.core.question import HEADLINE  # each question's table columns
from bench.core.rows import FAILURES, SUITE_COLUMNS

# Columns shown per suite in the summary (the CSVs have all of them).
KNOWN_TEXT = ("Cases that failed as a known upstream bug (known_failures.toml, with its public issue) or as a "
              "model is built to show (trace pitfalls): not failures of this run. `fixed_upstream`: the "
              "expected failure did not occur; remove or narrow its entry.")


def _md(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_"
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=".4g", missingval="")


def _case(row: pd.Series, suite: str) -> str:
    keys = [k for k in SUITE_COLUMNS.get(suite, ()) if k not in ("status", "reason")][:5]
    return " / ".join(str(row[k]) for k in keys if k in row and pd.notna(row[k]))


def render_summary(tables: dict[str, pd.DataFrame], fingerprint: dict, run: dict, notes: list[str]) -> str:
    from bench.report import headline as hl

    head = hl.build(tables, run, notes)
    lines = [f"# Benchmark report `{run.get('run_id', '?')}` (profile {run.get('profile', '?')})", "",
             f"**{head.verdict}**", ""]
    if head.numbers:
        lines += [_md(pd.DataFrame(head.numbers, columns=["what", "value", "case"])), ""]
    env_keys = ("torch", "cuda", "gpu_name", "cpu_model", "cpu_capability", "torch_threads", "transformers")
    lines.append("Environment: " + ", ".join(f"{k} `{fingerprint[k]}`" for k in env_keys
                                             if fingerprint.get(k) not in (None, "", {})))
    if not run.get("complete", True):
        lines += ["", "> **Incomplete run**: interrupted or still running; rows below are those that finished."]
    for note in notes:
        lines += ["", f"> **Warning**: {note}"]
    if not head.counts.empty:
        lines += ["", "## Status per suite", "", _md(head.counts)]
    bad_rows, limits, skipped = [], [], {}
    for suite, df in tables.items():
        for _, row in df.iterrows():
            reason = str(row["reason"])
            if row["status"] == "skipped":
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            target = bad_rows if row["status"] in FAILURES else limits if row["status"] == "unsupported" else None
            if target is not None:
                target.append({"suite": suite, "case": _case(row, suite), "status": row["status"],
                               "reason": reason[:300]})
    lines += ["", "## Failures", "", _md(pd.DataFrame(bad_rows)) if bad_rows else "None."]
    known = head.known
    if known:
        lines += ["", "## Known failures", "", KNOWN_TEXT, "",
                  _md(pd.DataFrame(known)[["suite", "case", "status", "kind", "reason"]].assign(
                      reason=lambda d: d["reason"].str.slice(0, 300)))]
    if limits:
        lines += ["", "## Unsupported", "", "Graphs or paths a tool cannot build here.", "",
                  _md(pd.DataFrame(limits))]
    for suite, df in tables.items():
        ran = df[df["status"] != "skipped"]
        cols = [c for c in HEADLINE.get(suite, df.columns) if c in df.columns]
        lines += ["", f"## {suite}", "", _md(ran[cols]) if not ran.empty else "_every case skipped_"]
    if skipped:
        lines += ["", "## Skipped", "", f"<details><summary>{sum(skipped.values())} case(s) skipped, "
                  f"{len(skipped)} reason(s)</summary>", "",
                  _md(pd.DataFrame([{"cases": n, "reason": r[:300]} for r, n in
                                    sorted(skipped.items(), key=lambda kv: -kv[1])])), "", "</details>"]
    per_suite, slowest = head.time
    if per_suite:
        lines += ["", "## Where the time went", "",
                  _md(pd.DataFrame(per_suite, columns=["suite", "wall_s", "cases"])), "",
                  f"Slowest {len(slowest)} cases:", "", _md(pd.DataFrame(slowest, columns=["case", "wall_s"]))]
    env = {k: v for k, v in fingerprint.items() if v not in (None, {}, "")}
    lines += ["", "## Environment", "", "<details><summary>every recorded setting</summary>", "",
              _md(pd.DataFrame({"key": list(env), "value": [str(v) for v in env.values()]})), "", "</details>"]
    return "\n".join(lines) + "\n"
