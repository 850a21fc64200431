"""The processes of an A/B experiment's runs: checking each environment can run the suite,
waiting for a quiet machine before a rerun, and ending every process a run started, in
whatever process group or session it put itself.

Each run's pytest gets a marker in its environment (``BENCH_AB_RUN=<token>``); environments
are inherited, so torchrun's ranks, the minifier's children and the callgrind child carry it
even when they start sessions of their own or are re-parented to init, and
``/proc/<pid>/environ`` finds them all (proc(5)). Killing the run's process group alone leaves
those alive.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from bench.core.load import FOREIGN_LOAD_WARN, share
from bench.core.load import busy_s as _busy_s
from bench.report.io import ResultsError

QUIET_WAIT_S = 120.0     # how long a rerun waits for the machine to be quiet
MARKER = "BENCH_AB_RUN"  # in the environment of every process a run starts (inherited by its children)
PROBE = "import bench.pytest_plugin, pytest, pytest_benchmark, torch; print(torch.__version__)"


def wait_for_quiet(max_s: float = QUIET_WAIT_S, window_s: float = 2.0, sleep=time.sleep, busy_s=None) -> float | None:
    """Wait until the machine spends less than FOREIGN_LOAD_WARN of its CPU on anything (no
    run of ours is going) over one ``window_s``, at most ``max_s``; returns the last window's
    busy share (None where /proc/stat cannot be read)."""
    busy_s = busy_s or _busy_s
    last, waited = None, 0.0
    while waited < max_s:
        b0 = busy_s()
        sleep(window_s)
        b1 = busy_s()
        waited += window_s
        if b0 is None or b1 is None:
            return None
        last = share(b1 - b0, window_s)
        if last <= FOREIGN_LOAD_WARN:
            break
    return last


def marked(token: str, proc_root: str = "/proc") -> list[int]:
    """Processes whose environment carries ``MARKER=token``: everything a run started, in any
    process group or session, even once re-parented to init."""
    needle = f"{MARKER}={token}".encode() + b"\0"
    found = []
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(os.path.join(entry.path, "environ"), "rb") as fh:
                if needle in fh.read() + b"\0":
                    found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def end_strays(token: str, rounds: int = 5) -> int:
    """Kill every process carrying the run's marker (a few rounds: a dying parent may still
    fork); returns how many were found."""
    seen: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in marked(token) if p not in seen]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        seen.update(pids)
        time.sleep(0.2)
    return len(seen)


def check_environment(python: str, label: str) -> str:
    """The environment's torch version, or a ResultsError naming what is missing."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ResultsError(f"--{label} {python}: cannot run it ({type(exc).__name__}: {exc})") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise ResultsError(f"--{label} {python}: this environment lacks the project or pytest ({last}); "
                           "install it there with: pip install -e .")
    return out.stdout.strip().splitlines()[-1]
