"""Progress for long work: before the cases run, each suite's timed cases and about how long
they take at this profile's budget; while a case runs past several times its budget, a line
that names it, so a user at the terminal knows the run is not hung."""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter

from bench.core.timing import Budget

FIRST_NOTICE_S = 20.0  # never before this: short cases stay quiet
REPEAT_S = 60.0
STEP_TIMED = ("ddp", "trainer", "sharded")  # suites whose cases run a fixed number of steps


def suite_estimates(items, budget: Budget) -> list[str]:
    """One line per suite file: its timed cases and their time at ``budget`` (warm-up plus
    measured time per case; builds, DDP and Trainer runs are extra)."""
    counts: Counter = Counter()
    for item in items:
        row = item.get_closest_marker("bench_row")
        if row and not any(m.name == "skip" for m in item.iter_markers()):
            stepped = row.kwargs.get("suite") in STEP_TIMED  # timed per step inside a run, not by the budget
            counts[(item.nodeid.split("::")[0], stepped)] += 1
    per_case = budget.estimate_s()
    return [f"bench: {suite}: {n} run(s) timed per step (a fixed number of steps each, not the per-case budget)"
            if stepped else
            f"bench: {suite}: {n} timed case(s), about {_duration(n * per_case)} at this profile's budget "
            f"({budget.measure_s:g} s measured + up to {budget.warmup_s:g} s warm-up a case; a slow call gets its "
            f"{budget.min_rounds} minimum rounds; checks and builds come on top)"
            for (suite, stepped), n in sorted(counts.items())]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class Watchdog:
    """Calls ``say(text)`` when the case ``name`` is still running after ``after_s``, then
    every REPEAT_S; ``stop()`` ends it (call it before the case's outcome is reported)."""

    def __init__(self, name: str, budget: Budget, say):
        self.name, self.budget, self.say = name, budget, say
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        args=(max(FIRST_NOTICE_S, 4 * budget.estimate_s()),))
        self._thread.start()

    def _run(self, after_s: float) -> None:
        wait = after_s
        while not self._stop.wait(wait):
            elapsed = time.perf_counter() - self.t0
            self.say(f"bench: still running {self.name} after {elapsed:.0f} s (this profile times a case for about "
                     f"{self.budget.estimate_s():.0f} s; a slow call is timed {self.budget.min_rounds} rounds at "
                     "least, a build or a launch takes longer): not hung")
            wait = REPEAT_S

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def terminal_fd() -> int | None:
    """A duplicate of the terminal's stdout, taken while pytest's capture is suspended (at
    configure time): lines written to it reach the user even while a test's output is
    captured, from any thread, without touching pytest's capture state (which is not
    thread-safe)."""
    try:
        return os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no real stdout (embedded runs, some IDEs)
        return None


def terminal_writer(fd: int | None):
    """``say(text)`` writing a line to ``fd`` (from ``terminal_fd``), or None without one."""
    if fd is None:
        return None
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            try:
                os.write(fd, f"\n{text}\n".encode())
            except OSError:
                pass  # the terminal went away: progress is a courtesy, never a failure

    return say
