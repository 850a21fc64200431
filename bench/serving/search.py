"""The highest request rate a scheduler serves within the latency targets, found by trying rates:
from the measured burst capacity, doubling while the targets hold (halving while they do not),
then one geometric bisection of the bracket. Each trial serves twice the plan's requests as
Poisson arrivals (a longer trace, so a queue can build where the rate exceeds what the server
drains), every request checked against eager first. A rate whose trace would last longer than
the profile allows is not tried: the row then says how far down it looked.

The result is the row's ``max_rate_meeting`` (the highest rate tried that met both targets at
p90), ``rate_bracket_low`` / ``_high`` (that rate and the lowest rate tried above it that did
not) and ``trials`` ("rate:met" or "rate:missed", in the order tried).
"""
from __future__ import annotations

import math

STEPS = 3          # doublings (or halvings) at most before the bracket is bisected
TRACE_S = {"smoke": 3.0, "standard": 8.0, "full": 60.0}  # the longest trace a trial may take


def search(trial, start: float, requests: int, profile: str) -> dict:
    """``trial(rate) -> bool`` serves one trace at ``rate`` and says whether it met both
    targets; ``start``: the burst capacity (requests/s)."""
    tried: list[tuple[float, bool]] = []
    slowest = requests / TRACE_S[profile]  # the lowest rate whose trace fits the profile's time

    def attempt(rate: float) -> bool:
        met = trial(rate)
        tried.append((rate, met))
        return met

    rate, met = start, attempt(start)
    for _ in range(STEPS):
        nxt = rate * 2 if met else rate / 2
        if nxt < slowest:
            break
        rate, again = nxt, attempt(nxt)
        if again != met:
            break
    ok = [r for r, m in tried if m]
    missed = [r for r, m in tried if not m]
    low = max(ok) if ok else None
    high = min((r for r in missed if low is None or r > low), default=None)
    if low is not None and high is not None and high / low > 1.25:  # one bisection, geometric
        mid = math.sqrt(low * high)
        if attempt(mid):
            low = mid
        else:
            high = mid
    return {"max_rate_meeting": low, "rate_bracket_low": low, "rate_bracket_high": high,
            "lowest_rate_tried": min(r for r, _ in tried),
            "trials": " ".join(f"{r:.3g}:{'met' if m else 'missed'}" for r, m in tried)}


def meets(summary: dict) -> bool:
    """Both targets met at p90 (``load.summarize``'s figures)."""
    return summary["completed"] == summary["requests"] and summary["ttft_ms_p90"] <= summary["ttft_target_ms"] \
        and (summary["tpot_ms_p90"] or 0) <= summary["tpot_target_ms"]
