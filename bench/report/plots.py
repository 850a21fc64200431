"""Charts for the HTML report, as PNG bytes (matplotlib, Agg backend: no display)."""
from __future__ import annotations

import io

import pandas as pd


def _bar(df: pd.DataFrame, label_cols: list[str], value_col: str, title: str, xlabel: str) -> bytes | None:
    df = df[(df["status"] == "ok") & df[value_col].notna()] if value_col in df.columns else df.iloc[0:0]
    if df.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [" ".join(str(r[c]) for c in label_cols if c in r and pd.notna(r[c])) for _, r in df.iterrows()]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(df) + 1.2))
    ax.barh(labels, df[value_col].astype(float))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


CHARTS = {
    "devices": (["model", "device", "dtype", "phase", "batch_size"], "samples_per_s",
                "Throughput by device and precision", "samples/s"),
    "graph_modes": (["model", "mode", "device", "phase"], "speedup_vs_eager", "Speed-up over eager by graph mode",
                    "speed-up (x)"),
    "ddp": (["model", "backend", "world_size"], "scaling_efficiency", "DDP scaling efficiency", "efficiency"),
    "trainer": (["model", "precision", "batch_size", "optim", "compile"], "samples_per_s", "Trainer fine-tuning",
                "samples/s"),
    "autograd_ops": (["op", "device", "dtype"], "speedup_vs_native", "Custom op fwd+bwd vs native composite",
                     "speed-up (x)"),
}


def suite_chart(suite: str, df: pd.DataFrame) -> bytes | None:
    if suite not in CHARTS:
        return None
    labels, value, title, xlabel = CHARTS[suite]
    return _bar(df, labels, value, title, xlabel)
