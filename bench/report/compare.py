"""Regression verdicts between two runs (PITFALLS 12: one run proves nothing).

Per benchmark: the ratio of medians (new / base), and a significance test: a two-sided
Mann-Whitney U test on the raw samples when both runs kept them, otherwise whether the 95 %
confidence intervals of the means (from mean, stddev and rounds) overlap. A benchmark is a
regression only when it is slower beyond the threshold *and* the difference is significant.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd

from bench.env import COMPARABLE_KEYS
from bench.report.io import ResultsError, load_results


@dataclasses.dataclass
class Verdict:
    table: pd.DataFrame
    warnings: list[str]

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] == "regression"]

    @property
    def improvements(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] == "improvement"]


def _samples(bench: dict) -> list[float] | None:
    data = (bench.get("stats") or {}).get("data")
    return [float(v) for v in data] if data else None


def _significant(base: dict, new: dict, alpha: float) -> tuple[bool, float | None, str]:
    a, b = _samples(base), _samples(new)
    if a and b and len(a) >= 3 and len(b) >= 3:
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        return p < alpha, p, "mann-whitney"
    sa, sb = base.get("stats") or {}, new.get("stats") or {}

    def ci(s):
        n = max(int(s.get("rounds") or 1), 1)
        half = 1.96 * float(s.get("stddev") or 0.0) / math.sqrt(n)
        return float(s["mean"]) - half, float(s["mean"]) + half

    (alo, ahi), (blo, bhi) = ci(sa), ci(sb)
    return (ahi < blo or bhi < alo), None, "ci-overlap"


def environment_warnings(base: dict, new: dict) -> list[str]:
    fa = (base.get("machine_info") or {}).get("bench") or {}
    fb = (new.get("machine_info") or {}).get("bench") or {}
    out = []
    pa, pb = (base.get("bench_run") or {}).get("profile"), (new.get("bench_run") or {}).get("profile")
    if pa and pb and pa != pb:
        out.append(f"runs used different profiles ({pa} vs {pb}): the same benchmark names measure different "
                   "workloads (batch sizes, sequence lengths)")
    for key in COMPARABLE_KEYS:
        if key in fa and key in fb and fa[key] != fb[key]:
            out.append(f"environments differ in {key}: {fa[key]!r} vs {fb[key]!r}")
    return out


def compare(base: dict, new: dict, threshold: float = 0.10, alpha: float = 0.05) -> Verdict:
    bmap = {b["fullname"]: b for b in base.get("benchmarks", []) if "fullname" in b and "stats" in b}
    nmap = {b["fullname"]: b for b in new.get("benchmarks", []) if "fullname" in b and "stats" in b}
    common = [name for name in nmap if name in bmap]
    if not common:
        raise ResultsError(f"the two runs have no benchmark in common ({len(bmap)} in base, {len(nmap)} in new)")
    rows = []
    for name in common:
        b, n = bmap[name], nmap[name]
        bm, nm = float(b["stats"]["median"]), float(n["stats"]["median"])
        ratio = nm / bm if bm > 0 else float("inf")
        sig, p, test = _significant(b, n, alpha)
        verdict = "same"
        if sig and ratio > 1 + threshold:
            verdict = "regression"
        elif sig and ratio < 1 / (1 + threshold):
            verdict = "improvement"
        rows.append({"benchmark": name, "base_median_ms": bm * 1e3, "new_median_ms": nm * 1e3,
                     "ratio": ratio, "change_pct": 100 * (ratio - 1), "p_value": p, "test": test,
                     "verdict": verdict})
    warnings = environment_warnings(base, new)
    only = sorted(set(bmap) ^ set(nmap))
    if only:
        warnings.append(f"{len(only)} benchmark(s) appear in only one of the runs")
    table = pd.DataFrame(rows).sort_values("ratio", ascending=False).reset_index(drop=True)
    return Verdict(table, warnings)


def latest_in_history(reports_dir: Path, exclude: Path | None = None) -> Path:
    """The newest results file in ``reports/history`` other than ``exclude``."""
    history = sorted((reports_dir / "history").glob("*.json"))
    if exclude is not None:
        history = [h for h in history if h.resolve() != exclude.resolve()]
        ex = load_results(exclude).get("bench_run", {}).get("run_id")
        history = [h for h in history if h.stem != ex]
    if not history:
        raise ResultsError(f"no earlier run in {reports_dir / 'history'} to compare against")
    return history[-1]


def render(verdict: Verdict, fmt: str) -> str:
    t = verdict.table
    if fmt == "csv":
        return t.to_csv(index=False)
    if fmt == "markdown":
        body = t.to_markdown(index=False, floatfmt=".4g", missingval="")
        warn = "".join(f"\n> **Warning**: {w}" for w in verdict.warnings)
        return (f"**{len(verdict.regressions)} regression(s), {len(verdict.improvements)} improvement(s)**"
                f"{warn}\n\n{body}\n")
    lines = [f"warning: {w}" for w in verdict.warnings]
    lines.append(t.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    lines.append(f"{len(verdict.regressions)} regression(s), {len(verdict.improvements)} improvement(s)")
    return "\n".join(lines) + "\n"
