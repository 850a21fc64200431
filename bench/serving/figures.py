"""What the serving rows mean together: the highest Poisson rate that met the targets at p90
(with the bracket the sweep puts around it), for the headline, and the throughput-latency
curve and the long-context sweep as report charts (``Question.figures`` / ``charts``)."""
from __future__ import annotations

import pandas as pd

from bench.core.charts import finish, pyplot
from bench.core.rows import passed


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(index=df.index, dtype=float)


def sweeps(df: pd.DataFrame) -> list[dict]:
    """Per model, device and scheduler: the Poisson rows by rate, and the highest rate at which
    that rate and every lower one met both targets at p90, with the next rate tested above it
    (which did not). A failed row (not served, tokens differ) ends the sustainable range."""
    need = {"scenario", "scheduler", "request_rate", "ttft_ms_p90", "ttft_target_ms"}
    if df.empty or not need <= set(df.columns):
        return []
    out = []
    sweep = df[df["scenario"] == "poisson"]
    for key, g in sweep.groupby(["model", "device", "scheduler"], sort=True):
        g = g.assign(rate=_num(g, "request_rate")).dropna(subset=["rate"]).sort_values("rate")
        if g.empty:
            continue
        meets = [passed(r["status"]) and r["ttft_ms_p90"] <= r["ttft_target_ms"]
                 and (pd.isna(r.get("tpot_ms_p90")) or r["tpot_ms_p90"] <= r["tpot_target_ms"])
                 for _, r in g.iterrows()]
        held = 0
        while held < len(meets) and meets[held]:
            held += 1
        best = g.iloc[held - 1] if held else None
        above = g.iloc[held] if held < len(g) else None
        out.append({"model": key[0], "device": key[1], "scheduler": key[2], "rows": g, "best": best, "above": above,
                    "targets": (float(g["ttft_target_ms"].iloc[0]), float(g["tpot_target_ms"].iloc[0]))})
    return out


def headline(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    searched = _searched(df)
    out = list(searched.values())
    for s in sweeps(df):
        if (s["model"], s["device"], s["scheduler"]) in searched:
            continue  # the search's bracket is the finer statement
        ttft, tpot = s["targets"]
        best, above = s["best"], s["above"]
        if best is None:
            value = f"none: the lowest rate tested, {above['rate']:.3g} requests/s, missed a target"
        elif above is None:
            value = (f">= {best['rate']:.3g} requests/s (every rate tested met the targets; goodput there "
                     f"{best['goodput']:.3g} requests/s)")
        else:
            value = (f"{best['rate']:.3g} requests/s, bracket [{best['rate']:.3g}, {above['rate']:.3g}); goodput "
                     f"there {best['goodput']:.3g} requests/s")
        out.append((f"serving {s['model']} {s['device']} {s['scheduler']} batching: highest Poisson rate meeting "
                    f"the targets", value, f"p90 TTFT <= {ttft:.0f} ms and TPOT <= {tpot:.0f} ms"))
    if {"scenario", "prompt_len", "cache", "kv_cache_bytes_held"} <= set(df.columns):
        ctx = df[(df["scenario"] == "long_context") & df["status"].map(passed) & (df["cache"] == "dynamic")]
        if "kv_finding" in df.columns:  # a cache holding more than its window: named, whatever the row's length
            for _, r in df[df["kv_finding"].notna()].iterrows():
                out.append((f"long context {r['model']} {r['device']} {r['cache']} cache at {int(r['prompt_len'])} "
                            "tokens: KV cache OVER-ALLOCATED", str(r["kv_finding"]), "a cost, tokens equal to eager's"))
        if not ctx.empty:
            top = ctx.loc[_num(ctx, "prompt_len").idxmax()]
            out.append((f"long context {top['model']} {top['device']} at {int(top['prompt_len'])} tokens",
                        f"TTFT {top['ttft_ms']:.3g} ms, decode {top['decode_ms_p50']:.3g} ms/token, KV held "
                        f"{top['kv_cache_bytes_held'] / top['kv_cache_bytes_formula']:.2f}x the window's formula",
                        f"sliding window {int(top['window'])}, tokens equal to eager's"))
    return out


def _searched(df: pd.DataFrame) -> dict[tuple, tuple[str, str, str]]:
    """The capacity rows' statements (what, value, case) by (model, device, scheduler)."""
    if "scenario" not in df.columns or "max_rate_meeting" not in df.columns:
        return {}
    out = {}
    for _, r in df[(df["scenario"] == "capacity") & df["status"].map(passed)].iterrows():
        low, high = r.get("max_rate_meeting"), r.get("rate_bracket_high")
        if pd.notna(low) and pd.notna(high):
            value = f"{low:.3g} requests/s, bracket [{low:.3g}, {high:.3g})"
        elif pd.notna(low):
            value = f">= {low:.3g} requests/s (no rate tried missed the targets)"
        else:
            value = f"none down to {r.get('lowest_rate_tried', float('nan')):.3g} requests/s"
        out[(r["model"], r["device"], r["scheduler"])] = (
            f"serving {r['model']} {r['device']} {r['scheduler']} batching: highest rate meeting the targets", value,
            f"p90 TTFT <= {r['ttft_target_ms']:.0f} ms, TPOT <= {r['tpot_target_ms']:.0f} ms; "
            f"{int(r['requests'])} Poisson requests a trial; tried {r.get('trials')}")
    return out


def charts(df: pd.DataFrame, rows: list[dict]) -> list[tuple[str, bytes | None]]:
    return [("throughput vs latency", _curve(df)), ("long context", _context(df))]


def _curve(df: pd.DataFrame) -> bytes | None:
    drawn = sweeps(df)
    if not drawn:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for s in drawn:
        g = s["rows"][s["rows"]["status"].map(passed)]
        label = f"{s['model']} {s['device']} {s['scheduler']}"
        axes[0].plot(_num(g, "requests_per_s"), _num(g, "ttft_ms_p90"), marker="o", label=label)
        axes[1].plot(_num(g, "requests_per_s"), _num(g, "tpot_ms_p90"), marker="o", label=label)
    ttft, tpot = drawn[0]["targets"]
    axes[0].axhline(ttft, ls="--", lw=0.8, color="grey", label=f"target {ttft:.0f} ms")
    axes[1].axhline(tpot, ls="--", lw=0.8, color="grey", label=f"target {tpot:.0f} ms")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("completed requests/s")
    axes[0].set_ylabel("p90 time to first token (ms)")
    axes[0].legend(fontsize=6)
    return finish(fig, axes[1], "completed requests/s", "p90 time per output token (ms)",
                   "serving: latency against throughput (Poisson arrivals)")


def _context(df: pd.DataFrame) -> bytes | None:
    if "scenario" not in df.columns:
        return None
    ctx = df[(df["scenario"] == "long_context") & df["status"].map(passed)]
    if ctx.empty or ctx["prompt_len"].nunique() < 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (model, device, cache), g in ctx.groupby(["model", "device", "cache"], sort=True):
        g = g.sort_values("prompt_len")
        ax.plot(_num(g, "prompt_len"), _num(g, "ttft_ms"), marker="o", label=f"{model} {device} {cache}: TTFT")
        ax.plot(_num(g, "prompt_len"), _num(g, "decode_ms_p50"), marker="s", ls=":",
                label=f"{model} {device} {cache}: decode step")
    window = _num(ctx, "window").dropna()
    if not window.empty:
        ax.axvline(float(window.iloc[0]), ls="--", lw=0.8, color="grey", label="sliding window")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return finish(fig, ax, "prompt length (tokens)", "ms", "serving: prefill and decode against context length")
