"""History (``bench.report.history``) as text, Markdown, JSON or a self-contained page with
one trend chart per changed metric and a small-multiples overview."""
from __future__ import annotations

import base64
import html
import io
import json

import pandas as pd

from bench.report.history import Group

CHANGE_COLUMNS = ["direction", "case", "metric", "run_id", "before", "after", "ratio", "repro"]
STATUS_COLUMNS = ["direction", "case", "run_id", "from", "to", "reason"]
CURVE_COLUMNS = ["case", "run_id", "first_step", "max_rel_diff", "environment", "note"]
INCOMPLETE_COLUMNS = ["run_id", "reason"]
# a changed curve is a finding, not a change toward worse: an upgrade may change rounding legitimately


def _df(records, columns) -> pd.DataFrame:
    df = pd.DataFrame(records)
    return df[[c for c in columns if c in df.columns]] if not df.empty else df


def render(groups: list[Group], fmt: str, recent_bad: list[dict]) -> str:
    if fmt == "json":
        return json.dumps({"groups": [g.to_json() for g in groups]}, indent=1, default=str, allow_nan=False) + "\n"
    md = fmt == "markdown"
    lines = []
    for g in groups:
        title = f"profile {g.profile}, {g.machine}: {len(g.runs)} runs ({g.runs[0].run_id} .. {g.runs[-1].run_id})"
        lines += ["", f"## {title}" if md else f"== {title} =="]
        for name, records, cols in _sections(g):
            lines.append(f"### {name}" if md else f"-- {name} --")
            df = _df(records, cols)
            if df.empty:
                lines.append("none")
            elif md:
                lines.append(df.to_markdown(index=False, floatfmt=".4g"))
            else:
                lines.append(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    verdict = (f"{len(recent_bad)} change(s) toward worse in the recent runs" if recent_bad
               else "no change toward worse in the recent runs")
    return "\n".join([verdict, *lines, "", verdict]) + "\n"


def _sections(g: Group) -> tuple:
    return (("Changes", g.changes, CHANGE_COLUMNS), ("Status changes", g.status_changes, STATUS_COLUMNS),
            ("Loss curves that left the previous run's", g.curve_changes, CURVE_COLUMNS),
            ("Runs that did not finish", g.incomplete, INCOMPLETE_COLUMNS))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return f'<img alt="trend" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plot(ax, series: dict, changes: list[dict], title: str) -> None:
    values, runs = series["values"], series["runs"]
    x = list(range(len(values)))
    spreads = series["spreads"] if len(series["spreads"]) == len(values) else None
    ax.errorbar(x, values, yerr=[v * s for v, s in zip(values, spreads)] if spreads else None, fmt="o", ms=3,
                lw=0.8, capsize=2)
    for c in changes:
        i = runs.index(c["run_id"])
        ax.axvline(i - 0.5, color="#c0392b" if c["direction"] == "worse" else "#27ae60", lw=1.2, ls="--")
        ax.hlines([c["before"], c["after"]], [max(i - 5, 0), i], [i - 0.5, min(i + 5, len(values) - 1)],
                  color="black", lw=1.5)
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=6)


def render_html(groups: list[Group], recent_bad: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [f"<h1>{len(recent_bad)} change(s) toward worse in the recent runs</h1>"]
    for g in groups:
        parts.append(f"<h2>profile {html.escape(str(g.profile))}, {html.escape(g.machine)}: {len(g.runs)} runs</h2>")
        for name, records, cols in _sections(g):
            df = _df(records, cols)
            parts.append(f"<h3>{name}</h3>" + (df.to_html(index=False, float_format=lambda v: f"{v:.4g}")
                                               if not df.empty else "<p>none</p>"))
        # a lost value has no level after it to draw: its row in the table says it
        drawn = [c for c in g.changes if c["after"] is not None and (c["case"], c["metric"]) in g.series]
        changed = sorted({(c["case"], c["metric"]) for c in drawn})
        for key in changed:
            fig, ax = plt.subplots(figsize=(9, 2.6))
            _plot(ax, g.series[key], [c for c in drawn if (c["case"], c["metric"]) == key],
                  f"{key[0].split('::')[-1]} - {key[1]}")
            fig.tight_layout()
            parts.append(f'<div class="trend">{_png(fig)}</div>')
            plt.close(fig)
        overview = changed + [k for k in sorted(g.series) if k not in changed]
        overview = overview[:48]
        if overview:
            cols = 6
            rows = (len(overview) + cols - 1) // cols
            fig, axes = plt.subplots(rows, cols, figsize=(16, 1.7 * rows), squeeze=False)
            for ax, key in zip(axes.flat, overview):
                _plot(ax, g.series[key], [c for c in drawn if (c["case"], c["metric"]) == key],
                      f"{key[0].split('[')[-1].rstrip(']')[:28]} {key[1]}")
            for ax in list(axes.flat)[len(overview):]:
                ax.axis("off")
            fig.tight_layout()
            parts.append(f'<h3>Overview</h3><div class="overview">{_png(fig)}</div>')
            plt.close(fig)
    style = ("body{font-family:sans-serif;max-width:1350px;margin:auto}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>bench history</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")
