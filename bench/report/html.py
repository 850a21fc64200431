"""index.html: one self-contained page (no server, no network): environment on top, one
section per suite with its table, statuses coloured, reasons visible, charts embedded."""
from __future__ import annotations

import base64
import html

import pandas as pd

from bench.report.plots import suite_chart

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f3f3f3}
tr.ok td.status{background:#d8f5d8}
tr.skipped td.status{background:#eee;color:#555}
tr.mismatch td.status,tr.error td.status,tr.oom td.status{background:#f8d0d0}
tr.unsupported td.status{background:#fbeec2}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:0.5em}
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        status = str(row.get("status", ""))
        cells = "".join(
            f'<td class="{html.escape(str(c))}">{_fmt(row[c])}</td>' for c in df.columns
        )
        body.append(f'<tr class="{html.escape(status)}">{cells}</tr>')
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_html(tables: dict[str, pd.DataFrame], fingerprint: dict, run: dict, notes: list[str]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bench report {html.escape(str(run.get('run_id')))}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>Benchmark report <code>{html.escape(str(run.get('run_id')))}</code></h1>",
             f"<p>profile <b>{html.escape(str(run.get('profile')))}</b>"
             f"{'' if run.get('complete', True) else ' — <b>incomplete run</b>'}</p>"]
    for note in notes:
        parts.append(f'<p class="warn">{html.escape(note)}</p>')
    env = pd.DataFrame({"key": list(fingerprint), "value": [str(v) for v in fingerprint.values()]})
    parts += ["<h2 id='environment'>Environment</h2>", _table(env, "environment")]
    if not tables:
        parts.append("<p>No benchmark rows in this run.</p>")
    for suite, df in tables.items():
        parts.append(f"<section id='{html.escape(suite)}'><h2>{html.escape(suite)}</h2>")
        png = suite_chart(suite, df)
        if png:
            b64 = base64.b64encode(png).decode()
            parts.append(f"<img class='chart' alt='{html.escape(suite)} chart' src='data:image/png;base64,{b64}'>")
        parts.append(_table(df, "results") + "</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
