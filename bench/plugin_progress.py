"""Progress for long work: while a case runs past several times its budget, a line that names
it, so a user at the terminal knows the run is not hung (the run's time plan, printed before the
cases run, is bench.core.plan's)."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from bench.core.timing import Budget

FIRST_NOTICE_S = 20.0  # never before this: short cases stay quiet
REPEAT_S = 60.0


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
        with lock, contextlib.suppress(OSError):  # the terminal went away: progress is a courtesy
            os.write(fd, f"\n{text}\n".encode())

    return say
