"""Matplotlib, headless, for every chart the reports embed: the Agg backend (no display) and a
figure turned into PNG bytes. On the lowest floor so a question's own charts
(``Question.charts``) and the report's share it."""
from __future__ import annotations

import io


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    pyplot().close(fig)
    return buf.getvalue()


def finish(fig, ax, xlabel: str, ylabel: str, title: str) -> bytes:
    """Label the axes, title, legend, tight layout: the PNG bytes."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return png(fig)
