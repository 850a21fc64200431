"""Charts for the HTML report, as PNG bytes (matplotlib, Agg backend: no display).

Each function returns None when its rows hold nothing to draw."""
from __future__ import annotations

import pandas as pd

from bench.core.charts import finish, png, pyplot
from bench.core.rows import PASSED, passed

LABELS = {
    "devices": ["model", "device", "dtype", "phase", "batch_size"],
    "graph_modes": ["model", "mode", "device", "phase"],
    "ddp": ["model", "backend", "world_size"],
    "trainer": ["runner", "device", "precision", "batch_size", "grad_accum", "world_size"],
    "autograd_ops": ["op", "device", "dtype"],
    "generation": ["model", "mode", "cache", "attention", "device", "dtype", "batch_size"],
}
TIMING = {"devices": "median_ms", "graph_modes": "median_ms", "ddp": "step_ms_p50", "trainer": "step_ms_p50",
          "autograd_ops": "fwd_bwd_median_ms", "generation": "decode_ms_p50"}
SPREAD_HIGH = {"ddp": "step_ms_p90", "trainer": "step_ms_p95", "generation": "decode_ms_p95"}


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(index=df.index, dtype=float)


def timing_chart(suite: str, df: pd.DataFrame) -> bytes | None:
    """Median time per ok case with its spread: p10-p90 of the rounds where known."""
    col = TIMING.get(suite)
    ok = df[df["status"].isin(PASSED) & _num(df, col).notna()] if col in df.columns else df.iloc[0:0]
    if ok.empty:
        return None
    med = _num(ok, col)
    lo = _num(ok, "p10_ms").fillna(med) if col == "median_ms" else med
    hi = _num(ok, SPREAD_HIGH.get(suite, "p90_ms"))
    hi = hi.fillna(med)
    labels = [" ".join(str(r[c]) for c in LABELS[suite] if c in r and pd.notna(r[c])) for _, r in ok.iterrows()]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.26 * len(ok) + 1.3))
    # dots, not bars: times span decades, so the axis is logarithmic, and a bar's length on a log
    # axis (from an arbitrary left edge) would misstate how two times compare
    ys = list(range(len(labels)))
    ax.errorbar(med, ys, xerr=[(med - lo).clip(lower=0), (hi - med).clip(lower=0)], fmt="o", color="#5b8def",
                markersize=4, elinewidth=0.8, capsize=2)
    ax.set_yticks(ys, labels)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.set_xscale("log")
    ax.set_xlabel(f"{col}, log scale (dot: median; whisker: p10-p90 of rounds)")
    ax.set_title(f"{suite}: time per call or step")
    ax.invert_yaxis()
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return png(fig)


def throughput_vs_batch(df: pd.DataFrame) -> bytes | None:
    ok = df[df["status"].isin(PASSED) & _num(df, "samples_per_s").notna()]
    if ok.empty or not {"batch_size", "model", "device", "dtype", "phase"} <= set(ok.columns) \
            or ok["batch_size"].nunique() < 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, g in ok.groupby(["model", "device", "dtype", "phase"]):
        if g["batch_size"].nunique() > 1:
            g = g.sort_values("batch_size")
            ax.plot(g["batch_size"], _num(g, "samples_per_s"), marker="o", label=" ".join(map(str, key)))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return finish(fig, ax, "batch size", "samples/s", "Throughput against batch size")


def roofline(df: pd.DataFrame, device: str) -> bytes | None:
    """Achieved TFLOP/s against arithmetic intensity, under the measured GEMM roof and the
    measured copy bandwidth (bytes: see bench.core.flops.count_flops_and_bytes)."""
    ok = df[df["status"].isin(PASSED) & (df["device"] == device) & _num(df, "arithmetic_intensity").notna()
            & _num(df, "tflops").notna()] if {"arithmetic_intensity", "dtype"} <= set(df.columns) else df.iloc[0:0]
    if ok.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ai, tf = _num(ok, "arithmetic_intensity"), _num(ok, "tflops")
    lo, hi = max(ai.min() / 4, 1e-2), ai.max() * 4
    bw = float(_num(ok, "bandwidth_gb_per_s").dropna().median()) if "bandwidth_gb_per_s" in ok.columns else None
    for dtype, g in ok.groupby("dtype"):
        ax.scatter(_num(g, "arithmetic_intensity"), _num(g, "tflops"), label=f"{dtype} cases", s=18)
        peak = float(_num(g, "peak_tflops").dropna().max()) if "peak_tflops" in g.columns else None
        if peak:
            ax.hlines(peak, lo, hi, linestyles="--", lw=1, label=f"{dtype} measured GEMM roof {peak:.3g} TFLOP/s")
    if bw:
        xs = [lo, hi]
        ax.plot(xs, [bw * x / 1e3 for x in xs], color="grey", lw=1, label=f"measured copy bandwidth {bw:.3g} GB/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(max(tf.min() / 4, 1e-6), None)
    return finish(fig, ax, "arithmetic intensity (FLOP / byte, bytes of unfused ops: a lower bound)",
                   "achieved TFLOP/s", f"Roofline: {device}")


def ddp_scaling(df: pd.DataFrame) -> bytes | None:
    ok = df[df["status"].isin(PASSED) & _num(df, "samples_per_s").notna()]
    if ok.empty or not {"backend", "model", "world_size"} <= set(ok.columns):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    drew = False
    for (model, backend), g in ok[ok["backend"] != "none"].groupby(["model", "backend"]):
        single = ok[(ok["model"] == model) & (ok["backend"] == "none")]
        g = g.sort_values("world_size")
        ax.plot(g["world_size"], _num(g, "samples_per_s"), marker="o", label=f"{model} {backend}")
        if not single.empty:
            base = float(_num(single, "samples_per_s").iloc[0])
            ax.plot(g["world_size"], [base * w for w in g["world_size"]], ls="--", lw=0.8,
                    label=f"{model} ideal (world size x no-DDP)")
        drew = True
    if not drew:
        pyplot().close(fig)
        return None
    return finish(fig, ax, "world size", "samples/s (global)", "DDP scaling against ideal (weak scaling)")


def trainer_steps(rows: list[dict]) -> bytes | None:
    series = [r for r in rows if r.get("suite") == "trainer" and passed(r.get("status")) and r.get("step_ms_samples")]
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    warm = 0
    for r in series:
        steps = r["step_ms_samples"]
        warm = max(warm, len(steps) - int(r.get("steady_steps") or len(steps)))
        label = " ".join(str(r.get(k)) for k in ("runner", "device", "precision", "batch_size") if r.get(k))
        ax.plot(range(1, len(steps) + 1), steps, lw=1, label=label)
    if warm:
        ax.axvspan(0.5, warm + 0.5, color="#f4d03f", alpha=0.3, label="warm-up (reported apart)")
    ax.set_yscale("log")
    return finish(fig, ax, "optimizer step", "step time (ms)", "Trainer step time over steps")


def decode_by_position(rows: list[dict]) -> bytes | None:
    """Per-token decode latency over the generated positions (the KV cache grows along x)."""
    series = [r for r in rows if r.get("suite") == "generation" and passed(r.get("status"))
              and r.get("decode_ms_by_position")]
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for r in series:
        ms = [float(x) for x in str(r["decode_ms_by_position"]).split("/")]
        label = " ".join(str(r.get(k)) for k in ("model", "mode", "cache", "attention", "batch_size") if r.get(k))
        ax.plot(range(2, len(ms) + 2), ms, lw=1, label=label)
    ax.set_yscale("log")
    return finish(fig, ax, "generated position", "decode step (ms, median over calls)",
                   "generation: decode latency as the cache grows")


def generation_vs_batch(df: pd.DataFrame) -> bytes | None:
    ok = df[df["status"].isin(PASSED) & _num(df, "decode_tokens_per_s").notna()]
    ok = ok[(ok["mode"] == "eager") & (ok["cache"] == "dynamic") & (ok["attention"] == "sdpa")] if "mode" in ok else ok
    if ok.empty or ok["batch_size"].nunique() < 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (model, device), g in ok.groupby(["model", "device"]):
        g = g.sort_values("batch_size")
        ax.plot(g["batch_size"], _num(g, "decode_tokens_per_s"), marker="o", label=f"{model} {device}")
    ax.set_xscale("log", base=2)
    return finish(fig, ax, "batch size", "decode tokens/s", "generation: throughput against batch size")


def charts(suite: str, df: pd.DataFrame, rows: list[dict]) -> list[tuple[str, bytes]]:
    """Every chart of one suite: (title, png)."""
    out = [("timing", timing_chart(suite, df))]
    if suite == "devices":
        out.append(("throughput vs batch size", throughput_vs_batch(df)))
        for device in sorted(df["device"].dropna().unique()) if "device" in df.columns else []:
            out.append((f"roofline {device}", roofline(df, device)))
    if suite == "ddp":
        out.append(("scaling", ddp_scaling(df)))
    if suite == "trainer":
        out.append(("steps", trainer_steps(rows)))
    if suite == "generation":
        out += [("decode latency by position", decode_by_position(rows)),
                ("throughput vs batch size", generation_vs_batch(df))]
    from bench.core.question import questions

    q = questions().get(suite)
    own = q.hook("charts") if q is not None else None
    if own is not None:  # the question's own charts (bench.core.question: charts)
        out += own(df, rows)
    return [(t, png) for t, png in out if png]
