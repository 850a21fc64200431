"""A comparison (``bench.report.compare.Diff``) as terminal text, Markdown, CSV, JSON or a
self-contained HTML page. The sections come in the order a reader needs them."""
from __future__ import annotations

import html
import json

import pandas as pd

from bench.core.rows import metric_of
from bench.report.compare import Diff

METRIC_COLUMNS = ["verdict", "case", "metric", "unit", "base", "new", "ratio", "p_value", "runs_base", "runs_new",
                  "note"]


def _df(records: list[dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(records)
    return df[[c for c in columns if c in df.columns]] if not df.empty else df


def headline(diff: Diff) -> str:
    reg, st = diff.regressions, diff.status_regressions
    unsure = sum(m["verdict"] == "unsure" for m in diff.metrics)
    better = sum(m["verdict"] == "improvement" for m in diff.metrics)
    runs = f"{len(diff.runs_base)} run(s) vs {len(diff.runs_new)} run(s)"
    head = "REGRESSION" if diff.verdict == "regression" else "no regression"
    return (f"{head}: {len(st)} correctness regression(s), {len(reg)} performance regression(s), "
            f"{better} improvement(s), {unsure} unsure, {len(diff.drift)} numeric drift(s) ({runs})")


def _sections(diff: Diff) -> list[tuple[str, pd.DataFrame | list[str]]]:
    judged = [m for m in diff.metrics if m["verdict"] != "same"]
    judged.sort(key=lambda m: ("regression", "unsure", "improvement").index(m["verdict"]))
    geo = [{"suite": s, "geomean_time_ratio": r} for s, r in sorted(diff.geomean.items())]
    return [
        ("What changed", _df(diff.environment, ["key", "base", "new"])),
        ("Correctness", _df(diff.correctness, ["change", "case", "base_status", "new_status", "base_reason",
                                               "new_reason"])),
        ("Numeric drift (warning)", _df(diff.drift, ["case", "metric", "base", "new", "factor"])),
        ("Performance: suite geometric means of time ratios (new / base)", pd.DataFrame(geo)),
        ("Performance: changed or unsure metrics", _df(judged, METRIC_COLUMNS)),
        ("New warnings", _df(diff.new_warnings, ["case", "warning"])),
        ("Only in base", list(diff.only_in_base)),
        ("Only in new", list(diff.only_in_new)),
        ("Repro", [f"{case}: {cmd}" for case, cmd in diff.repro.items()]),
    ]


def render(diff: Diff, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(diff.to_json(), indent=1, default=str, allow_nan=False) + "\n"
    if fmt == "csv":
        return _df(diff.metrics, ["suite", *METRIC_COLUMNS, "test", "threshold"]).to_csv(index=False)
    if fmt == "html":
        return render_html(diff)
    md = fmt == "markdown"
    lines = [f"**{headline(diff)}**" if md else headline(diff)]
    lines += [(f"> **Warning**: {w}" if md else f"warning: {w}") for w in diff.warnings]
    for title, body in _sections(diff):
        if isinstance(body, list):
            if body:
                lines += ["", f"### {title}" if md else f"== {title} ==", *[f"- {b}" if md else b for b in body]]
            continue
        lines += ["", f"### {title}" if md else f"== {title} =="]
        if body.empty:
            lines.append("none")
        elif md:
            lines.append(body.to_markdown(index=False, floatfmt=".4g", missingval=""))
        else:
            lines.append(body.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    lines += ["", headline(diff)]
    return "\n".join(lines) + "\n"


def _ratio_chart(diff: Diff) -> str:
    """Per suite, the time ratio of each timing metric as an embedded PNG (matplotlib)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = [m for m in diff.metrics if m["ratio"] and
              metric_of(m["suite"], m["metric"]).kind == "timing"]
    suites = sorted({m["suite"] for m in timing})
    if not suites:
        return ""
    fig, axes = plt.subplots(len(suites), 1, figsize=(10, 1.2 + 0.22 * max(len(timing), 4)), squeeze=False)
    colors = {"regression": "#c0392b", "improvement": "#27ae60", "unsure": "#e67e22", "same": "#7f8c8d"}
    for ax, suite in zip(axes[:, 0], suites):
        ms = sorted((m for m in timing if m["suite"] == suite), key=lambda m: m["ratio"])
        ax.barh([m["case"].split("::")[-1][:60] for m in ms], [m["ratio"] for m in ms],
                color=[colors.get(m["verdict"], "#7f8c8d") for m in ms])
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_title(f"{suite}: new / base time (red: regression, orange: unsure)", fontsize=9)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="time ratios" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def render_html(diff: Diff) -> str:
    parts = [f"<h1>{html.escape(headline(diff))}</h1>"]
    parts += [f"<p class=warn>{html.escape(w)}</p>" for w in diff.warnings]
    for title, body in _sections(diff):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(body, list):
            parts.append("<ul>" + "".join(f"<li><code>{html.escape(b)}</code></li>" for b in body) + "</ul>"
                         if body else "<p>none</p>")
        else:
            parts.append(body.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
                         if not body.empty else "<p>none</p>")
        if title.startswith("Performance: suite"):
            parts.append(_ratio_chart(diff))
    style = ("body{font-family:sans-serif;max-width:1350px;margin:auto}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.warn{color:#a04000}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>bench compare</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")
