"""The plan of an A/B experiment: how many runs, whether it runs until it knows
(``--until-decided``: looks, the false-alarm level per look, a budget), and the smallest
change it can detect from an earlier A/A's run-to-run spread."""
from __future__ import annotations

import dataclasses
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

    def __post_init__(self):
        if self.runs < 1:
            raise ResultsError(f"--runs {self.runs}: give at least 1 (3 or more a side for a verdict on timings)")
        if self.max_runs is None:
            self.max_runs = max(6, 3 * self.runs) if self.until_decided else self.runs
        if self.max_runs < self.runs:
            raise ResultsError(f"--max-runs {self.max_runs}: give at least --runs ({self.runs})")
        if self.budget_s is not None and self.budget_s <= 0:
            raise ResultsError(f"--budget {self.budget_s / 60:g}: give minutes above 0")
        if not self.until_decided and (self.max_runs != self.runs or self.budget_s is not None):
            raise ResultsError("--max-runs and --budget only apply with --until-decided")

    @property
    def looks(self) -> int:
        """Planned looks at the verdict: after the first blocks, then after each added block."""
        return 1 + (self.max_runs - self.runs if self.until_decided else 0)

    def alpha_per_look(self, alpha: float) -> float:
        return alpha / self.looks


def noise_from(path: str) -> dict[tuple[str, str], float]:
    """Run-to-run spread (sd of log run statistics) per case and metric from an earlier
    experiment's compare.json."""
    try:
        data = json.loads(Path(path).read_text())
        return {(m["case"], m["metric"]): float(m["sd_log"]) for m in data["metrics"] if m.get("sd_log") is not None}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"--noise {path}: not a compare.json with run-to-run spreads ({exc})") from None


def plan_text(noise: dict[tuple[str, str], float], runs: int, alpha: float) -> str:
    """The smallest change the experiment can likely detect (80 % power) at ``runs`` a side,
    per metric from its measured spread: the median and the worst over metrics."""
    if not noise:
        return "ab: no earlier A/A given (--noise): the detectable change is printed after the first runs"
    mdes = sorted(stats.detectable_change(sd, runs, alpha) for sd in noise.values())
    worst_key = max(noise, key=noise.get)
    return (f"ab: at {runs} runs a side this machine's run-to-run spread lets a change of "
            f"{statistics.median(mdes):.2f}x be detected for the median metric ({len(mdes)} metrics), "
            f"{mdes[-1]:.2f}x for the noisiest ({worst_key[1]} of {worst_key[0]})")
