"""The plan of an A/B experiment: how many runs, whether it runs until it knows
(``--until-decided``: looks, the false-alarm level of each look, a budget), and the smallest
change it can detect from an earlier A/A's run-to-run spread.

Repeated looks at growing data inflate false alarms. The level of each look comes from an
alpha-spending function over the planned looks (Lan & DeMets 1983, "Discrete sequential
boundaries for clinical trials", Biometrika 70:659): the cumulative false-alarm probability
spent by information fraction t (runs a side so far / most runs a side) is alpha(t), and each
look's nominal level is the boundary that spends exactly alpha(t_k) - alpha(t_(k-1)) given that
no earlier look crossed (the looks' statistics are correlated, which the even Bonferroni split
alpha / looks ignores and pays for). Spending functions: ``pocock`` (alpha ln(1 + (e - 1) t),
Lan-DeMets' Pocock-type: spends early, where a short experiment wants to stop) and
``obrien-fleming`` (2 - 2 Phi(z(1 - alpha/2) / sqrt(t)): almost nothing early, nearly alpha at
the last look); ``bonferroni`` keeps the old even split. The boundaries are found for the
z-statistic of Brownian motion observed at the looks (the standard group-sequential model),
by a seeded simulation (deterministic, 200,000 paths: the level is exact to about +/-3 % of
itself); Welch's t at few runs a side has heavier tails than z, so the nominal levels are
applied to t p-values as is common practice (Jennison & Turnbull 2000, ch. 3)."""
from __future__ import annotations

import dataclasses
import functools
import json
import statistics
from pathlib import Path

from bench.report import stats
from bench.report.io import ResultsError


@dataclasses.dataclass
class Plan:
    """How long an experiment may run: the first ``runs`` blocks always, then (with
    ``until_decided``) one block at a time while metrics are unsure, up to ``max_runs`` a
    side and while a new block would end within ``budget_s``."""

    runs: int
    until_decided: bool = False
    max_runs: int | None = None
    budget_s: float | None = None
    spending: str = "pocock"

    def __post_init__(self):
        if self.spending not in SPENDING:
            raise ResultsError(f"--spending {self.spending}: valid: {', '.join(SPENDING)}")
        if self.runs < 1:
            raise ResultsError(f"--runs {self.runs}: give at least 1 (3 or more a side for a verdict on timings)")
        if self.max_runs is None:
            self.max_runs = max(6, 3 * self.runs) if self.until_decided else self.runs
        if self.max_runs < self.runs:
            raise ResultsError(f"--max-runs {self.max_runs}: give at least --runs ({self.runs})")
        if self.budget_s is not None and not 0 < self.budget_s < float("inf"):  # NaN fails both
            raise ResultsError(f"--budget {self.budget_s / 60:g}: give minutes above 0")
        if not self.until_decided and (self.max_runs != self.runs or self.budget_s is not None):
            raise ResultsError("--max-runs and --budget only apply with --until-decided")

    @property
    def looks(self) -> int:
        """Planned looks at the verdict: after the first blocks, then after each added block."""
        return 1 + (self.max_runs - self.runs if self.until_decided else 0)

    def alpha_per_look(self, alpha: float) -> float:
        """The even (Bonferroni) split, the level of every look under ``bonferroni``."""
        return alpha / self.looks

    def look_fractions(self) -> list[float]:
        """Information fraction of each planned look: runs a side at the look / most runs a side."""
        if not self.until_decided:
            return [1.0]
        return [(self.runs + k) / self.max_runs for k in range(self.looks)]

    def look_levels(self, alpha: float) -> list[float]:
        """The nominal two-sided level of each planned look (see the module's docstring)."""
        if self.spending == "bonferroni" or self.looks == 1:
            return [self.alpha_per_look(alpha)] * self.looks
        return _boundaries(tuple(self.look_fractions()), alpha, self.spending)

    def alpha_at_look(self, alpha: float, look: int) -> float:
        """The level of look ``look`` (1 = the first); past the plan, the last look's."""
        levels = self.look_levels(alpha)
        return levels[min(max(look, 1), len(levels)) - 1]


SPENDING = ("pocock", "obrien-fleming", "bonferroni")


def spent(t: float, alpha: float, kind: str) -> float:
    """Cumulative alpha spent by information fraction ``t`` (Lan & DeMets 1983)."""
    import math

    from scipy.stats import norm

    if t <= 0:
        return 0.0
    if kind == "pocock":
        return alpha * math.log(1 + (math.e - 1) * min(t, 1.0))
    return float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(min(t, 1.0))))


@functools.lru_cache(maxsize=32)
def _boundaries(fractions: tuple[float, ...], alpha: float, kind: str, paths: int = 200_000) -> list[float]:
    import numpy as np
    from scipy.stats import norm

    rng = np.random.default_rng(20261206)
    steps = np.diff(np.concatenate([[0.0], fractions]))
    w = np.cumsum(rng.standard_normal((paths, len(fractions))) * np.sqrt(steps), axis=1)
    z = np.abs(w / np.sqrt(np.asarray(fractions)))
    alive = np.ones(paths, dtype=bool)
    levels, before = [], 0.0
    for k, t in enumerate(fractions):
        target = spent(t, alpha, kind) - before  # the share of all paths this look may reject
        before += target
        zk = np.sort(z[alive, k])[::-1]
        n = int(round(target * paths))
        c = float(zk[n]) if 0 < n < len(zk) else (float(zk[0]) + 1.0 if n <= 0 else 0.0)
        alive &= ~(z[:, k] > c)
        levels.append(float(2 * norm.sf(c)))
    return levels


def noise_from(path: str) -> dict[tuple[str, str], float]:
    """Run-to-run spread (sd of log run statistics) per case and metric from an earlier
    experiment's compare.json."""
    try:
        data = json.loads(Path(path).read_text())
        return {(m["case"], m["metric"]): float(m["sd_log"]) for m in data["metrics"] if m.get("sd_log") is not None}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"--noise {path}: not a compare.json with run-to-run spreads ({exc})") from None


def plan_text(noise: dict[tuple[str, str], float], runs: int, alpha: float, instructions: bool = False) -> str:
    """What each channel can decide at ``runs`` a side: instruction counts (from one run a
    side, beyond their threshold plus band), the wall-time metrics normalised by the interleaved
    reference (``*_norm``) and the raw ones, each the smallest change likely detected (80 %
    power) from its measured run-to-run spread: the median and the worst over metrics."""
    lines = []
    if instructions:
        lines.append("ab: instruction counts (--bench-instructions): decided from one run a side, a change beyond "
                     "the 1.5 % threshold plus the counts' band (CPU rows the profile can count)")
    if not noise:
        lines.append("ab: wall time: no earlier A/A given (--noise): the detectable change is printed after the "
                     "first runs")
        return "\n".join(lines)
    for label, keys in (("normalised by the reference", [k for k in noise if k[1].endswith("_norm")]),
                        ("raw", [k for k in noise if not k[1].endswith("_norm")])):
        if not keys:
            continue
        mdes = sorted(stats.detectable_change(noise[k], runs, alpha) for k in keys)
        worst_key = max(keys, key=noise.get)
        lines.append(f"ab: at {runs} runs a side this machine's run-to-run spread lets a change of "
                     f"{statistics.median(mdes):.2f}x be detected for the median metric ({len(mdes)} metrics, "
                     f"{label}), "
                     f"{mdes[-1]:.2f}x for the noisiest ({worst_key[1]} of {worst_key[0]})")
    return "\n".join(lines)


def out_of_reach(m: dict, kind: str, reach: int, per_side: int) -> str | None:
    """Why more runs cannot decide an unsure metric (None: they may): a count's band only
    widens with runs, a zero or missing side has no ratio, a ratio on the threshold or one
    needing more runs than the plan and the budget still allow (``reach`` a side)."""
    if kind == "counted":
        return "a count: more runs widen its band, they do not narrow it"
    if kind == "exact":
        return "deterministic: more runs give the same value"
    test = str(m.get("test") or "")
    if test == "none" or "a side is zero" in test:
        return m.get("note") or "no ratio to test"
    if m.get("sd_log") is None:
        return None if per_side < 2 else "no run-to-run spread measured"
    need = m.get("runs_needed")
    if need is None:
        return f"its ratio ({m.get('ratio') or 0:.3g}x) sits on the threshold, or it needs over 200 runs a side"
    if need > reach:
        return f"needs about {need} runs a side; the experiment can reach {reach} (--max-runs, --budget)"
    return None


def mark_out_of_reach(metrics: list[dict], reasons: dict) -> None:
    """Name, in each unsure metric's note, why more runs could not decide it (``reasons``:
    (case, metric) -> why, from the experiment's last look)."""
    for m in metrics:
        why = reasons.get((m["case"], m["metric"]))
        if why and m["verdict"] == "unsure":
            m["out_of_reach"] = why
            m["note"] = f"{m.get('note') or ''} [out of reach at this noise: {why}]".strip()
