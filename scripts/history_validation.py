"""Precision and recall of `python -m bench history`'s change-point detector on synthetic
series with known steps (docs/measurements.md, "history validation"), and its false-change rate on a real A/A history.

    python scripts/history_validation.py synthetic
    python scripts/history_validation.py rounds   # the same through analyse(): results with raw rounds
    python scripts/history_validation.py aa DIR [DIR ...]   # folders of results files of one unchanged environment
"""
from __future__ import annotations

import argparse
import math
import random

STEPS = (0.03, 0.05, 0.10, 0.20, 0.50)
NOISES = (0.01, 0.05, 0.10, 0.20)
LENGTHS = (10, 30, 100)
TRIALS = 60


def synthetic(seed: int = 0) -> None:
    from bench.report.history import MIN_SEGMENT, change_points

    rng = random.Random(seed)
    print("Detected steps: recall / precision (a detection within 1 run of the true step is a hit); "
          f"{TRIALS} series with a step and {TRIALS} without per cell; threshold 10 %.\n")
    for n in LENGTHS:
        print(f"**{n} runs**\n")
        print("| step \\ noise | " + " | ".join(f"{x:.0%}" for x in NOISES) + " |")
        print("|---|" + "---|" * len(NOISES))
        false_rows = []
        for step in STEPS:
            cells = []
            for noise in NOISES:
                hits = detections = truths = false_changes = 0
                for _ in range(TRIALS):
                    at = rng.randint(MIN_SEGMENT, n - MIN_SEGMENT)
                    series = [math.exp(rng.gauss(0, noise)) * (1 + step if i >= at else 1.0) for i in range(n)]
                    found = change_points(series)
                    truths += 1
                    detections += len(found)
                    hits += any(abs(c["index"] - at) <= 1 for c in found)
                    flat = [math.exp(rng.gauss(0, noise)) for _ in range(n)]
                    false_changes += len(change_points(flat))
                precision = hits / detections if detections else float("nan")
                cells.append(f"{hits / truths:.2f} / {precision:.2f}")
                false_rows.append((step, noise, false_changes / TRIALS))
            print(f"| {step:.0%} | " + " | ".join(cells) + " |")
        per_noise = {}
        for _, noise, rate in false_rows:
            per_noise.setdefault(noise, []).append(rate)
        print("| no step: false changes per series | " +
              " | ".join(f"{sum(v) / len(v):.3f}" for v in per_noise.values()) + " |\n")


def rounds(seed: int = 0, within: float = 0.30, n: int = 30, trials: int = 30) -> None:
    """Recall through the path real timings take (Run objects with raw rounds, analyse()),
    with rounds that spread ``within`` inside every run: the run medians carry the signal."""
    from bench.report.history import MIN_SEGMENT, analyse
    from bench.report.runs import Run

    rng = random.Random(seed)
    case = "suites/test_autograd_ops.py::test_op_fwd_bwd[x-cpu-fp32]"
    print(f"Through analyse(): {n} runs, rounds spread {within:.0%} (uniform) inside each run, {trials} series "
          "per cell; recall / precision.\n")
    print("| step \\ run-to-run noise | " + " | ".join(f"{x:.0%}" for x in NOISES) + " |")
    print("|---|" + "---|" * len(NOISES))
    for step in (0.0, 0.10, 0.25, 0.50):
        cells = []
        for noise in NOISES:
            hits = detections = 0
            for _ in range(trials):
                at = rng.randint(MIN_SEGMENT, n - MIN_SEGMENT)
                runs = []
                for i in range(n):
                    med = 10 * math.exp(rng.gauss(0, noise)) * (1 + step if i >= at else 1.0)
                    samples = [med * (1 + rng.uniform(-within, within)) for _ in range(9)]
                    runs.append(Run(f"r{i}", f"20990101-{i:06d}", "smoke", True, {"cpu_model": "x"},
                                    {case: {"suite": "autograd_ops", "test": case, "status": "ok"}}, {case: samples}))
                (group,) = analyse(runs)
                found = [c for c in group.changes if c["metric"] == "fwd_bwd_median_ms"]
                detections += len(found)
                hits += step > 0 and any(abs(int(c["run_id"][-6:]) - at) <= 1 for c in found)
            if step == 0:
                cells.append(f"{detections / trials:.3f} false per series")
            else:
                cells.append(f"{hits / trials:.2f} / {hits / detections if detections else float('nan'):.2f}")
        print(f"| {step:.0%} | " + " | ".join(cells) + " |")


def aa(folders: list[str]) -> None:
    from bench.report.history import analyse, find_runs

    runs = find_runs(folders)
    for g in analyse(runs):
        series = len(g.series)
        worse = sum(c["direction"] == "worse" for c in g.changes)
        print(f"A/A history: profile {g.profile}, {len(g.runs)} runs of one unchanged environment, {series} series: "
              f"{len(g.changes)} change(s) ({worse} toward worse), {len(g.status_changes)} status change(s); "
              f"false-change rate {len(g.changes) / max(series, 1):.3f} per series")
        for c in g.changes:
            print(f"  {c['case']} {c['metric']} at {c['run_id']}: {c['ratio']:.3f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("synthetic", "rounds", "aa"))
    p.add_argument("folders", nargs="*")
    a = p.parse_args()
    {"synthetic": synthetic, "rounds": rounds}.get(a.what, lambda: aa(a.folders))()


if __name__ == "__main__":
    main()
