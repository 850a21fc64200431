"""A comparison (``bench.report.compare.Diff``) as terminal text, Markdown, CSV, JSON or a
self-contained HTML page. The sections come in the order a reader needs them."""
from __future__ import annotations

import html
import json

import pandas as pd

from bench.report.compare import Diff, method
from bench.report.stats import worse_ratio

METRIC_COLUMNS = ["verdict", "case", "metric", "unit", "base", "new", "ratio", "ci_low", "ci_high", "threshold",
                  "q_value", "runs_base", "runs_new", "runs_needed", "note"]
COLORS = {"regression": "#c0392b", "improvement": "#27ae60", "unsure": "#e67e22", "same": "#7f8c8d"}


def _df(records: list[dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(records)
    return df[[c for c in columns if c in df.columns]] if not df.empty else df


def headline(diff: Diff) -> str:
    reg, st = diff.regressions, diff.status_regressions
    unsure = [m for m in diff.metrics if m["verdict"] == "unsure"]
    better = sum(m["verdict"] == "improvement" for m in diff.metrics)
    same = sum(m["verdict"] == "same" for m in diff.metrics)
    runs = f"{len(diff.runs_base)} run(s) vs {len(diff.runs_new)} run(s)"
    # nothing worse shown is not everything shown the same: "no regression shown" while unsure
    head = "REGRESSION" if diff.verdict == "regression" else "no regression shown" if unsure else "no regression"
    crashed = f"{len(diff.crash_regressions)} crashed new run(s), " if diff.crash_regressions else ""
    lost = [r for r in diff.run_regressions if r["kind"] != "run_failure"]
    failed = len(diff.run_regressions) - len(lost)
    crashed += "".join(f"{r['reason'].split(':')[0]}, " for r in lost)
    crashed += f"{failed} failure(s) of a new run as a whole, " if failed else ""
    flaky = [c for c in diff.correctness if c["change"] == "flaky"]
    crashed += f"{len(flaky)} flaky on both sides, " if flaky else ""
    loaded = [m for m in diff.metrics if m.get("timed_under_load")]
    decided = sum(m["verdict"] in ("regression", "improvement") for m in loaded)
    load = (f"; {len(loaded)} metric(s) of cases timed under foreign load ({decided} decided from several runs "
            "a side, the loaded runs named in their notes; the others not decided)" if loaded else "")
    return (f"{head}: {crashed}{len(st)} correctness regression(s), {len(reg)} performance regression(s), "
            f"{better} improvement(s), {same} same, {len(unsure)} unsure{_needed(unsure)}, "
            f"{len(diff.drift)} numeric drift(s){_curves(diff)} ({runs}){load}")


def _curves(diff: Diff) -> str:
    changed = [c for c in diff.curves if c["verdict"] == "changed"]
    if not diff.curves:
        return ""
    first = f" (first: {changed[0]['case']} at step {changed[0]['first_step']})" if changed else ""
    return f", {len(changed)} of {len(diff.curves)} loss curve(s) changed{first}"


def _needed(unsure: list[dict]) -> str:
    """How many runs a side would likely decide the unsure metrics (median over them)."""
    if not unsure:
        return ""
    need = sorted(m["runs_needed"] for m in unsure if m.get("runs_needed"))
    if not need:
        return " (run-to-run spread unknown: give >= 2 runs a side)"
    return (f" (about {need[len(need) // 2]} runs a side would decide half of them; "
            f"{len(unsure) - len(need)} out of reach)" if len(need) < len(unsure) else
            f" (about {need[len(need) // 2]} runs a side would decide half of them)")


def _sections(diff: Diff) -> list[tuple[str, pd.DataFrame | list[str]]]:
    judged = [m for m in diff.metrics if m["verdict"] != "same"]
    judged.sort(key=lambda m: ("regression", "unsure", "improvement").index(m["verdict"]))
    crashes = [f"{c['run']} ({c['side']}): {c['problem']}" for c in diff.crashes]
    geo = [{"suite": s, "geomean_time_ratio": r} for s, r in sorted(diff.geomean.items())]
    return [
        ("Crashed runs", crashes),
        ("The new stack lost hardware, or a new run failed as a whole", [r["reason"] for r in diff.run_regressions]),
        ("What changed", _df(diff.environment, ["key", "base", "new"])),
        ("Correctness", _df(diff.correctness, ["change", "case", "base_status", "new_status", "base_reason",
                                               "new_reason"])),
        ("Numeric drift (warning)", _df(diff.drift, ["case", "metric", "base", "new", "factor"])),
        ("Loss curves (a changed curve is a finding: where the new stack's training left the old one's)",
         _df([c for c in diff.curves if c["verdict"] != "same"], ["verdict", "case", "first_step", "max_rel_diff",
                                                                  "band", "final_base", "final_new", "note"])),
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
        return _df(diff.metrics, ["suite", *METRIC_COLUMNS, "test"]).to_csv(index=False)
    if fmt == "html":
        return render_html(diff)
    import textwrap

    md = fmt == "markdown"
    lines = [f"**{headline(diff)}**"] if md else textwrap.wrap(headline(diff), WIDTH, subsequent_indent="  ")
    lines += ([f"_Method: {method(diff.alpha)}._"] if md else
              textwrap.wrap(f"method: {method(diff.alpha)}", WIDTH, subsequent_indent="  "))
    lines += [f"> **Warning**: {w}" for w in diff.warnings] if md else \
        [line for w in diff.warnings for line in textwrap.wrap(f"warning: {w}", WIDTH, subsequent_indent="  ")]
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
            lines += _fit(body)
    lines += [""] + ([headline(diff)] if md else textwrap.wrap(headline(diff), WIDTH, subsequent_indent="  "))
    return "\n".join(lines) + "\n"


WIDTH = 120  # the plain table fits a terminal; --format markdown / json / csv carry everything
_TEXT = ("note", "base_reason", "new_reason", "warning")  # long text: wrapped under its row


def _short_case(case) -> str:
    """A node id's parameters ("test_op_fwd_bwd[gelu_tanh-cpu-fp32]"), at most 44 characters."""
    text = str(case).rsplit("::", 1)[-1]
    return text if len(text) <= 44 else text[:43] + "…"


def _fit(df: pd.DataFrame) -> list[str]:
    """A table in WIDTH columns: short case names, numbers to 4 digits, each long text (note,
    reasons) wrapped on indented lines under its row, and any cell still too wide cut."""
    import textwrap

    text_cols = [c for c in df.columns if c in _TEXT]
    table = df.drop(columns=text_cols).copy()
    if {"ci_low", "ci_high", "runs_base", "runs_new"} <= set(table.columns):  # metrics: one column each
        num = pd.to_numeric
        table["interval"] = [f"{lo:.3g}-{hi:.3g}" if pd.notna(lo) and pd.notna(hi) else ""
                             for lo, hi in zip(num(table["ci_low"], errors="coerce"),
                                               num(table["ci_high"], errors="coerce"))]
        table["runs"] = [f"{b}/{n}" for b, n in zip(table["runs_base"], table["runs_new"])]
        table = table.drop(columns=["ci_low", "ci_high", "runs_base", "runs_new", "unit", "threshold"],
                           errors="ignore").rename(columns={"runs_needed": "need", "q_value": "q"})
        table = table.drop(columns=[c for c in ("need", "q") if c in table and table[c].isna().all()])
    if "case" in table.columns:
        table["case"] = table["case"].map(_short_case)
    cap = max(12, (WIDTH - 2 * len(table.columns)) // max(len(table.columns), 1) * 2)
    for col in table.columns:
        if table[col].dtype == object:
            table[col] = table[col].map(lambda v: v if not isinstance(v, str) or len(v) <= cap else v[:cap - 1] + "…")
    rows = table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", justify="left").splitlines()
    out = [rows[0][:WIDTH]]
    for i, line in enumerate(rows[1:]):
        out.append(line[:WIDTH])
        for col in text_cols:
            value = df.iloc[i][col]
            if isinstance(value, str) and value.strip():
                out += textwrap.wrap(f"{col}: {value}", WIDTH, initial_indent="    ", subsequent_indent="      ")[:4]
    return out


def _ratio_chart(diff: Diff) -> str:
    """Per suite, each judged metric's ratio new / base with its interval and the threshold
    band, coloured by verdict, as an embedded PNG (matplotlib). Ratios are drawn as "worse"
    ratios (> 1 is worse whichever way the metric is better) on a log axis."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in diff.metrics if m.get("ratio")]
    suites = sorted({m["suite"] for m in shown})
    if not suites:
        return ""
    heights = [max(len([m for m in shown if m["suite"] == s]), 3) for s in suites]
    fig, axes = plt.subplots(len(suites), 1, figsize=(10, 0.8 * len(suites) + 0.2 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, suite in zip(axes[:, 0], suites):
        ms = sorted((m for m in shown if m["suite"] == suite), key=lambda m: worse_ratio(m["ratio"], m["better"]))
        ys = range(len(ms))
        for y, m in zip(ys, ms):
            color = COLORS.get(m["verdict"], "#7f8c8d")
            lo, hi = m.get("ci_low"), m.get("ci_high")
            if lo and hi:
                a, b = sorted((worse_ratio(lo, m["better"]), worse_ratio(hi, m["better"])))
                ax.plot([a, b], [y, y], color=color, lw=2, solid_capstyle="butt")
            ax.plot([worse_ratio(m["ratio"], m["better"])], [y], "o", color=color, ms=4)
        band = 1 + min(m["threshold"] for m in ms) if all(m.get("threshold") for m in ms) else 1.1
        ax.axvspan(1 / band, band, color="#dfe6e9", zorder=0)
        ax.axvline(1.0, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set_yticks(list(ys), [f"{m['case'].split('::')[-1][:50]} {m['metric']}" for m in ms])
        ax.set_title(f"{suite}: new / base as 'worse' ratio (> 1 worse), {1 - 2 * diff.alpha:.0%} interval; "
                     "grey band: threshold; red regression, green improvement, orange unsure, grey same", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="ratios with intervals" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


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
