"""The first screen of a report: the run's verdict in one line, a status count per suite and
the few numbers people look for. Pure data, rendered by markdown.py and html.py alike."""
from __future__ import annotations

import dataclasses

import pandas as pd

from bench.core.load import FOREIGN_LOAD_WARN
from bench.core.question import questions
from bench.core.rows import FAILURES, STATUSES, SUITE_COLUMNS, implausible, passed


@dataclasses.dataclass
class Headline:
    good: bool
    verdict: str
    counts: pd.DataFrame                 # suite x status
    numbers: list[tuple[str, str, str]]  # (what, value, which case)
    cards: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # one per suite: its first figure
    more: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)   # the other figures
    known: list[dict] = dataclasses.field(default_factory=list)  # known failures and fixes (known_failures)
    time: tuple = dataclasses.field(default_factory=lambda: ([], []))  # where_time_went: per suite, slowest


def _fmt(v: float, unit: str = "") -> str:
    return f"{v:.3g}{unit}" if v is not None and pd.notna(v) else "-"


def _ok(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """Rows fit for a headline figure: ok, with a value, and no value beyond a physical bound."""
    if col not in df.columns:
        return df.iloc[0:0]
    keep = df["status"].map(passed).astype(bool) & pd.to_numeric(df[col], errors="coerce").notna()
    if not df.empty:
        keep &= df.apply(lambda r: not implausible(r.dropna().to_dict()), axis=1).astype(bool)
    return df[keep]


def _implausible(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Every row whose value is beyond a physical bound, recomputed from the values (older
    files have no ``implausible`` column): "suite case: what"."""
    out = []
    for suite, df in tables.items():
        for _, r in df.iterrows():
            beyond = implausible({k: v for k, v in r.items() if pd.notna(v)})
            if beyond:
                keys = [k for k in SUITE_COLUMNS.get(suite, ()) if k not in ("status", "reason")][:4]
                out.append(f"{suite} {_case(r, tuple(keys))}: {beyond}")
    return out


def _case(row: pd.Series, keys: tuple[str, ...]) -> str:
    return " ".join(str(row[k]) for k in keys if k in row.index and pd.notna(row[k]))


def _column(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col] if col in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def known_failures(tables: dict[str, pd.DataFrame]) -> list[dict]:
    """Rows that failed as expected or passed against an expectation: suite, case, status,
    whether upstream (manifest) or declared by a model, and the reason (which carries the link)."""
    out = []
    for suite, df in tables.items():
        keys = tuple(k for k in SUITE_COLUMNS.get(suite, ()) if k not in ("status", "reason"))[:5]
        for _, r in df[df["status"].isin(("known_failure", "fixed_upstream"))].iterrows():
            upstream = r.get("expected_upstream")
            out.append({"suite": suite, "case": _case(r, keys), "status": r["status"],
                        "kind": "upstream" if upstream is None or pd.isna(upstream) or bool(upstream) else "by design",
                        "link": r.get("expected_link") or "", "reason": str(r.get("reason"))})
    return out


def _counts_clause(tables: dict[str, pd.DataFrame], known: list[dict]) -> list[str]:
    """What ran and what could not: ok, known failures (with the first link), fixed upstream,
    cases this machine cannot run (hardware, cores, a backend), other skips."""
    ok = sum(int((df["status"] == "ok").sum()) for df in tables.values())
    lacks = skipped = left_out = 0
    for df in tables.values():
        skip = df["status"] == "skipped"
        hardware = skip & _column(df, "needs_hardware").fillna(False).astype(bool)
        planned = skip & (_column(df, "plan") == "left_out")
        lacks, left_out = lacks + int(hardware.sum()), left_out + int(planned.sum())
        skipped += int((skip & ~hardware & ~planned).sum())
    parts = [f"{ok} ok"]
    for kind, status, word in (("upstream", "known_failure", "known upstream failure"),
                               ("by design", "known_failure", "failed as designed (pitfall models)"),
                               (None, "fixed_upstream", "FIXED upstream (remove its known-failure entry)")):
        rows = [k for k in known if k["status"] == status and (kind is None or k["kind"] == kind)]
        if rows:
            links = sorted({k["link"] for k in rows if k["link"]})
            parts.append(f"{len(rows)} {word}" + (f" ({', '.join(links[:2])})" if links and kind != "by design"
                                                   else ""))
    if lacks:
        parts.append(f"{lacks} need hardware this machine lacks")
    if left_out:
        parts.append(f"{left_out} left out by the run's time plan (--bench-time-budget 0 times them)")
    if skipped:
        parts.append(f"{skipped} skipped (profile or options)")
    return parts


def build(tables: dict[str, pd.DataFrame], run: dict, notes: list[str]) -> Headline:
    failures = {s: 0 for s in FAILURES}
    for df in tables.values():
        for s in FAILURES:
            failures[s] += int((df["status"] == s).sum())
    counts = pd.DataFrame([{"suite": s, **{st: int((df["status"] == st).sum()) for st in STATUSES}}
                           for s, df in tables.items()])
    calibration = _calibration(tables.get("devices"))
    bad_cal = [c for c in calibration if not c[2]]
    incomplete = not run.get("complete", True)
    ok = sum(int(df["status"].map(passed).sum()) for df in tables.values())
    # a run that measured nothing proves nothing: never GOOD (every case skipped, or none ok)
    run_failures = list(run.get("failures") or [])  # a failure of the run itself: no row holds it
    good = not any(failures.values()) and not incomplete and not bad_cal and ok > 0 and not run_failures
    parts = [", ".join(f"{n} {s}" for s, n in failures.items() if n) or "no failures"]
    parts += [f"RUN FAILED: {f}" for f in run_failures]
    known = known_failures(tables)
    parts += _counts_clause(tables, known)
    if ok == 0:
        parts.append("NOTHING WAS MEASURED")
    if incomplete:
        parts.append("INCOMPLETE run")
    if calibration:
        parts.append("timing self-check " + ("FAILED" if bad_cal else "ok") + " (" +
                     ", ".join(f"{d} {r:.3f}" for d, r, _ in calibration) + ")")
    else:
        parts.append("no timing self-check in this run")
    loaded = _loaded(tables)
    if loaded:
        parts.append(f"{loaded[0]} of {loaded[1]} timed cases ran while other processes took > "
                     f"{FOREIGN_LOAD_WARN:.0%} of the CPU: their timings are SUSPECT (rerun on a quiet machine)")
    moved = [f"{s}: {r}" for s, df in tables.items() if "reference" in df.columns
             for r in df["reference"].dropna().astype(str) if r.startswith("changed")]
    if moved:  # in another environment (in the reference's own, the run failed above, naming it)
        parts.append(f"{len(moved)} loss curve(s) left their committed reference (first: {moved[0][:300]})")
    unlearned = _did_not_learn(tables.get("trainer"))
    if unlearned:  # a finding on the user's model or data, not a failure of the stack
        parts.append(f"{len(unlearned)} Trainer row(s) on your model/data DID NOT LEARN (first: {unlearned[0]})")
    impossible = _implausible(tables)
    if impossible:
        parts.append(f"{len(impossible)} IMPOSSIBLE value(s), left out of the figures below "
                     f"(first: {impossible[0]})")
    verdict = ("GOOD: " if good else "NOT GOOD: ") + "; ".join(parts)
    numbers = _numbers(tables, calibration)
    seen: set[str] = set()
    cards, more = [], []
    for what, value, case, suite in numbers:
        (more if suite in seen else cards).append((what, value, case))
        seen.add(suite)
    time = where_time_went([{**r, "suite": s} for s, df in tables.items() for r in df.to_dict("records")])
    return Headline(good, verdict, counts, [n[:3] for n in numbers], cards, more, known, time)


def _did_not_learn(tr: pd.DataFrame | None) -> list[str]:
    if tr is None or "learned" not in tr.columns:
        return []
    rows = tr[tr["learned"].astype(str).str.startswith("did not learn")]
    return [f"{_case(r, ('model', 'device', 'precision'))}: {r['learned'][len('did not learn: '):]}"
            for _, r in rows.iterrows()]


def _loaded(tables: dict[str, pd.DataFrame]) -> tuple[int, int] | None:
    """(cases timed under foreign load, cases timed), or None when none was."""
    loaded = timed = 0
    for df in tables.values():
        ran = df[df["status"].map(passed).astype(bool)]
        share = pd.to_numeric(_column(ran, "foreign_cpu_share"), errors="coerce")
        timed += int(share.notna().sum())
        loaded += int((share > FOREIGN_LOAD_WARN).sum())
    return (loaded, timed) if loaded else None


def where_time_went(rows: list[dict], top: int = 10) -> tuple[list[tuple[str, float, int]], list[tuple[str, float]]]:
    """Per suite, the wall time of its cases (setup, call and teardown as pytest timed them) and
    their number, costliest first; and the ``top`` slowest cases. Rows without ``wall_s`` (older
    files, Python-API rows) are left out."""
    timed = [r for r in rows if isinstance(r.get("wall_s"), (int, float)) and r["wall_s"] == r["wall_s"]
             and r.get("status") != "skipped"]  # the cases that ran
    suites: dict[str, list[float]] = {}
    for r in timed:
        suites.setdefault(str(r.get("suite")), []).append(float(r["wall_s"]))
    per_suite = sorted(((s, sum(v), len(v)) for s, v in suites.items()), key=lambda x: -x[1])
    slowest = sorted(((str(r.get("test")), float(r["wall_s"])) for r in timed), key=lambda x: -x[1])[:top]
    return per_suite, slowest


def _calibration(df: pd.DataFrame | None) -> list[tuple[str, float, bool]]:
    if df is None or "calibration_ratio" not in df.columns:
        return []
    rows = df[(df.get("phase") == "calibration") & df["calibration_ratio"].notna()]
    return [(r["device"], float(r["calibration_ratio"]), r["status"] == "ok") for _, r in rows.iterrows()]


def _numbers(tables: dict[str, pd.DataFrame], calibration) -> list[tuple[str, str, str, str]]:
    """(what, value, case, suite), each suite's most telling figure first."""
    out: list[tuple[str, str, str, str]] = []
    dev = tables.get("devices")
    if dev is not None and {"device", "dtype"} <= set(dev.columns):
        ok = _ok(dev, "tflops")
        ok = ok[ok["phase"].isin(("inference", "train"))] if "phase" in ok.columns else ok
        groups = sorted(ok.groupby(["device", "dtype"], sort=True), key=lambda kv: (kv[0][1] != "fp32", kv[0]))
        for (device, dtype), group in groups:  # fp32 first: the native precision everywhere
            best = group.loc[pd.to_numeric(group["tflops"]).idxmax()]
            pct = f"{_fmt(best.get('pct_of_peak'), ' %')} of measured roof"
            if pd.notna(best.get("pct_of_vendor_peak", None)):
                pct += f", {_fmt(best['pct_of_vendor_peak'], ' %')} of vendor peak"
            emulated = "emulated" in str(best.get("precision_note") or "")
            what = f"best {device} {dtype}" + (" (EMULATED on this CPU: not its low-precision throughput)"
                                               if emulated else "")
            out.append((what, f"{_fmt(best['tflops'])} TFLOP/s ({pct})", _case(best, ("model", "phase", "batch_size")),
                        "devices"))
    for device, ratio, good in calibration:
        out.append((f"timing self-check {device}", f"{ratio:.3f} ({'ok' if good else 'FAILED'}; 0.95-1.05)",
                    "suite clock / torch.utils.benchmark", "devices"))
    tr = tables.get("trainer")
    if tr is not None:
        for _, r in _ok(tr, "samples_per_s").iterrows():
            if r.get("runner", "trainer") == "trainer" and r.get("world_size", 1) in (1, None) \
                    and r.get("grad_accum", 1) == 1:
                out.append((f"Trainer {r.get('device', '')} {r.get('precision', '')}",
                            f"{_fmt(r['samples_per_s'])} samples/s, {_fmt(r.get('tokens_per_s'))} tokens/s, "
                            f"MFU {_fmt(r.get('mfu_pct'), ' %')}", _case(r, ("model", "batch_size", "optim")),
                            "trainer"))
        for _, r in _ok(tr, "tokens_per_s_upper").iterrows():
            if r.get("runner") == "causal_lm":
                out.append((f"causal-LM fine-tune {r.get('device', '')}",
                            f"{_fmt(r['tokens_per_s_upper'])} tokens/s (padding counted), step p50 "
                            f"{_fmt(r.get('step_ms_p50'), ' ms')}, perplexity {_fmt(r.get('ppl_before'))} -> "
                            f"{_fmt(r.get('ppl_after'))}", _case(r, ("model", "batch_size")), "trainer"))
    out += [(*n, "sharded") for n in _sharded(tables.get("sharded"))]
    ddp = tables.get("ddp")
    if ddp is not None and {"model", "backend", "world_size"} <= set(ddp.columns):
        eff = _ok(ddp, "scaling_efficiency")
        eff = eff[eff["backend"] != "none"] if "backend" in eff.columns else eff
        for (model, backend), group in eff.groupby(["model", "backend"], sort=True):
            top = group.loc[pd.to_numeric(group["world_size"]).idxmax()]
            out.append((f"DDP {model} {backend} at world size {int(top['world_size'])}",
                        f"scaling efficiency {_fmt(top['scaling_efficiency'])}", "vs world size x no-DDP process",
                        "ddp"))
    gen = tables.get("generation")
    if gen is not None and {"mode", "cache", "attention"} <= set(gen.columns):
        ref = _ok(gen, "decode_tokens_per_s")
        ref = ref[(ref["mode"] == "eager") & (ref["cache"] == "dynamic") & (ref["attention"] == "sdpa")]
        groups = sorted(ref.groupby(["model", "device"], sort=True), key=lambda kv: (kv[0][0] != "llama", kv[0]))
        for (model, device), group in groups:  # the reference decoder (Llama) first
            top = group.loc[pd.to_numeric(group["batch_size"]).idxmax()]
            out.append((f"generation {model} {device} {top.get('dtype', '')}",
                        f"{_fmt(top['decode_tokens_per_s'])} decode tokens/s, time to first token "
                        f"{_fmt(top.get('ttft_ms'), ' ms')}", f"eager, dynamic cache, batch {int(top['batch_size'])}",
                        "generation"))
    for name, q in questions().items():  # a question's own figures (bench.core.question: figures)
        figures = q.hook("figures") if name in tables else None
        if figures is not None:
            out += [(*n, name) for n in figures(tables[name])]
    gm = tables.get("graph_modes")
    if gm is not None:
        fast = _ok(gm, "speedup_vs_eager")
        fast = fast[fast["mode"] != "eager"] if "mode" in fast.columns else fast
        if not fast.empty:
            best = fast.loc[pd.to_numeric(fast["speedup_vs_eager"]).idxmax()]
            out.append(("best graph-mode speed-up (parity ok)", f"{_fmt(best['speedup_vs_eager'])}x over eager",
                        _case(best, ("model", "mode", "device", "phase")), "graph_modes"))
    ops = tables.get("autograd_ops")
    if ops is not None and not ops.empty:
        ran = ops[ops["status"] != "skipped"]
        if not ran.empty:
            good = int(ran["status"].map(passed).sum())
            out.append(("custom ops passing every check", f"{good} of {len(ran)} op cases",
                        f"{ran['op'].nunique() if 'op' in ran.columns else '?'} op(s); gradients, second "
                        "order, compile, export", "autograd_ops"))
    return out


def _sharded(sh: pd.DataFrame | None) -> list[tuple[str, str, str]]:
    """FSDP2's bytes per rank against unsharded, and checkpointing's peak memory, equal rows only."""
    out: list[tuple[str, str, str]] = []
    if sh is None or not {"strategy", "checkpointing"} <= set(sh.columns):
        return out
    fsdp = _ok(sh, "sharded_fraction")
    fsdp = fsdp[(fsdp["strategy"] == "fsdp") & (fsdp["checkpointing"] == "none")]
    if "mp" in fsdp.columns:
        fsdp = fsdp[fsdp["mp"].fillna("fp32") == "fp32"]
    for (model, device), group in fsdp.groupby(["model", "device"], sort=True):
        top = group.loc[pd.to_numeric(group["world_size"]).idxmax()]
        out.append((f"FSDP2 {model} {device} at world size {int(top['world_size'])}",
                    f"{_fmt(top['sharded_fraction'])} of the parameter bytes per rank (momentum alike), "
                    f"{_fmt(top.get('tokens_per_s'))} tokens/s", "equal to one process on the whole batch"))
    ck = _ok(sh, "step_peak_fraction")
    ck = ck[ck["checkpointing"] != "none"]
    for (model, mode), r in ck.groupby(["model", "checkpointing"], sort=True):
        r = r.iloc[0]
        out.append((f"checkpointing {model} {mode}", f"step peak {_fmt(r['step_peak_fraction'])} x the plain "
                    f"step's, time {_fmt(r.get('step_time_vs_no_checkpoint'))} x", "gradients equal under dropout"
                    if r.get("strategy") == "single" else f"{r.get('strategy')} world size {r.get('world_size')}"))
    return out
