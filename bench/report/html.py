"""index.html: one self-contained page (no server, no network). The first screen answers
"is this run good, and how close to the hardware did each path come?"; then failures, then
one section per suite (charts, a sortable and filterable table of its cases that ran),
skipped cases grouped by reason, and the environment, folded."""
from __future__ import annotations

import base64
import html

import pandas as pd

from bench.core.question import HEADLINE
from bench.core.rows import FAILURES
from bench.report import headline as hl
from bench.report.markdown import KNOWN_TEXT
from bench.report.plots import charts

CSS = """
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:1360px;padding:0 12px;color:#222}
h1{font-size:1.4em;margin:.2em 0}
.verdict{font-size:1.15em;padding:.6em .8em;border-radius:6px;margin:.4em 0}
.verdict.good{background:#d8f5d8;border:1px solid #7bc47b}.verdict.bad{background:#f8d0d0;border:1px solid #d77}
.numbers{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:6px;margin:.6em 0}
.num-card{border:1px solid #ddd;border-radius:6px;padding:6px 8px;font-size:13px}
.num-card b{display:block;font-size:15px}.num-card span{color:#666;font-size:12px}
table{border-collapse:collapse;font-size:12.5px;margin:.4em 0 1.2em;width:100%}
td,th{border:1px solid #ddd;padding:2px 5px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3;cursor:pointer;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ok td.status{background:#d8f5d8}tr.skipped td.status{background:#eee;color:#555}
tr.mismatch td.status,tr.error td.status,tr.oom td.status{background:#f8d0d0}
tr.unsupported td.status,tr.known_failure td.status{background:#fbeec2}tr.fixed_upstream td.status{background:#cfe8ff}
.more-numbers{margin:.2em 0 .6em}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.4em .6em;margin:.3em 0}
details summary{cursor:pointer}td details summary{color:#444}
img.chart{max-width:100%;display:block;margin:.3em 0}
input.filter{width:320px;margin:.2em 0;padding:2px 4px}
"""

SCRIPT = """
function sortTable(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
 b=t.tBodies[0],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
 const key=r=>{const c=r.children[i],v=c.dataset.v!==undefined?c.dataset.v:c.textContent;const n=parseFloat(v);
  return isNaN(n)?v.toLowerCase():n;};
 [...b.rows].sort((x,y)=>{const a=key(x),c=key(y);return (a>c?1:a<c?-1:0)*(asc?1:-1);}).forEach(r=>b.appendChild(r));}
function filterTable(input){const q=input.value.toLowerCase(),t=document.getElementById(input.dataset.table);
 let shown=0;[...t.tBodies[0].rows].forEach(r=>{const on=r.textContent.toLowerCase().includes(q);
 r.style.display=on?'':'none';shown+=on;});t.dataset.shown=shown;}
window.addEventListener('load',()=>{
 document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
 document.querySelectorAll('input.filter').forEach(i=>i.addEventListener('input',()=>filterTable(i)));
 const m=location.hash.match(/^#filter=([^:]+):(.*)$/);
 if(m){const i=document.querySelector('input.filter[data-table="table-'+m[1]+'"]');
  if(i){i.value=decodeURIComponent(m[2]);filterTable(i);}}
 const v=document.getElementById('verdict').getBoundingClientRect(),
  n=document.getElementById('numbers').getBoundingClientRect();
 document.body.dataset.verdictBottom=Math.round(v.bottom);document.body.dataset.numbersBottom=Math.round(n.bottom);
 document.body.dataset.scrollWidth=document.documentElement.scrollWidth;
 document.body.dataset.clientWidth=document.documentElement.clientWidth;});
"""
LONG = 80  # characters shown before a long text folds


def _cell(col: str, v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "<td></td>"
    if isinstance(v, bool):
        return f"<td>{v}</td>"
    if isinstance(v, (int, float)):
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        return f'<td class="num" data-v="{v}">{text}</td>'
    text = str(v)
    if col == "link" and text.startswith(("https://", "http://")):
        return f'<td><a href="{html.escape(text)}">{html.escape(text)}</a></td>'
    cls = ' class="status"' if col == "status" else ""
    if len(text) > LONG:
        return (f"<td{cls}><details><summary>{html.escape(text[:LONG])}…</summary>{html.escape(text)}"
                "</details></td>")
    return f"<td{cls}>{html.escape(text)}</td>"


def _table(df: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th title='click to sort'>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(f'<tr class="{html.escape(str(r.get("status", "")))}">'
                   + "".join(_cell(c, r[c]) for c in df.columns) + "</tr>" for _, r in df.iterrows())
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(title: str, png: bytes) -> str:
    return (f"<img class='chart' alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")


def _cards(numbers: list[tuple[str, str, str]]) -> str:
    return "".join(f"<div class='num-card'>{html.escape(what)}<b>{html.escape(value)}</b><span>{html.escape(case)}"
                   "</span></div>" for what, value, case in numbers)


def _env_line(fp: dict) -> str:
    keys = ("torch", "cuda", "gpu_name", "cpu_model", "cpu_capability", "torch_threads", "transformers")
    return ", ".join(f"{k} {fp[k]}" for k in keys if fp.get(k) not in (None, "", {}))


def render_html(tables: dict[str, pd.DataFrame], fingerprint: dict, run: dict, notes: list[str],
                rows: list[dict] | None = None) -> str:
    head = hl.build(tables, run, notes)
    run_id = html.escape(str(run.get("run_id")))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bench report {run_id}</title>"
             f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
             f"<h1>Benchmark report <code>{run_id}</code> — profile {html.escape(str(run.get('profile')))}</h1>",
             f"<div id='verdict' class='verdict {'good' if head.good else 'bad'}'>{html.escape(head.verdict)}</div>",
             "<div id='numbers' class='numbers'>" + _cards(head.cards) + "</div>",
             (f"<details class='more-numbers'><summary>{len(head.more)} more figure(s)</summary>"
              f"<div class='numbers'>{_cards(head.more)}</div></details>" if head.more else ""),
             f"<p>{html.escape(_env_line(fingerprint))}</p>"]
    parts += [f'<p class="warn">{html.escape(n)}</p>' for n in notes]
    if not head.counts.empty:
        parts += ["<h2>Status per suite</h2>", _table(head.counts, "table-counts")]
    bad = [dict(suite=s, **r) for s, df in tables.items() for r in df.to_dict("records")
           if r.get("status") in FAILURES]
    if bad:
        cols = ["suite", "test", "status", "reason"]
        parts += ["<h2>Failures</h2>", _table(pd.DataFrame(bad)[cols], "table-failures")]
    known = head.known
    if known:
        parts += ["<h2 id='known-failures'>Known failures</h2>", f"<p>{html.escape(KNOWN_TEXT)}</p>",
                  _table(pd.DataFrame(known)[["suite", "case", "status", "kind", "link", "reason"]], "table-known")]
    skipped: dict[str, list[str]] = {}
    for suite, df in tables.items():
        ran = df[df["status"] != "skipped"]
        for _, r in df[df["status"] == "skipped"].iterrows():
            skipped.setdefault(str(r.get("reason")), []).append(f"{suite}: {str(r.get('test', '')).split('::')[-1]}")
        shown = HEADLINE.get(suite) or tuple(c for c in df.columns if c not in ("suite", "reason"))  # declared
        cols = [c for c in shown if c in df.columns] + (["reason"] if "reason" in df.columns else [])
        parts.append(f"<section id='{html.escape(suite)}'><h2>{html.escape(suite)}</h2>")
        parts += [_img(f"{suite} {title}", png) for title, png in charts(suite, df, rows or [])]
        parts.append(f"<input class='filter' data-table='table-{html.escape(suite)}' placeholder='filter {suite} "
                     f"rows' aria-label='filter {suite}'> <a href='{html.escape(suite)}.csv'>all columns (CSV)</a>")
        parts.append(_table(ran[cols] if not ran.empty else ran, f"table-{html.escape(suite)}") + "</section>")
    if skipped:
        total = sum(len(v) for v in skipped.values())
        parts.append(f"<h2>Skipped</h2><details><summary>{total} case(s) skipped, {len(skipped)} reason(s)</summary>")
        for reason, cases in sorted(skipped.items(), key=lambda kv: -len(kv[1])):
            parts.append(f"<details><summary>{len(cases)} case(s): {html.escape(reason[:200])}</summary><ul>"
                         + "".join(f"<li>{html.escape(c)}</li>" for c in cases) + "</ul></details>")
        parts.append("</details>")
    per_suite, slowest = head.time
    if per_suite:
        parts += ["<h2 id='time'>Where the time went</h2>",
                  _table(pd.DataFrame(per_suite, columns=["suite", "wall_s", "cases"]), "table-time"),
                  f"<details><summary>slowest {len(slowest)} cases</summary>",
                  _table(pd.DataFrame(slowest, columns=["case", "wall_s"]), "table-slowest"), "</details>"]
    env = pd.DataFrame({"key": list(fingerprint), "value": [str(v) for v in fingerprint.values()]})
    parts += [f"<h2 id='environment'>Environment</h2><details><summary>{html.escape(_env_line(fingerprint))}"
              "</summary>", _table(env, "table-environment"), "</details></body></html>"]
    return "\n".join(parts)
