"""The processes of an A/B experiment: one run of pytest (its exit, its results, the CPU other
processes took meanwhile), checking each environment can run the suite, waiting for a quiet
machine before a rerun, and ending every process a run started, in whatever process group or
session it put itself.

Each run's pytest gets a marker in its environment (``BENCH_AB_RUN=<token>``); environments
are inherited, so torchrun's ranks, the minifier's children and the callgrind child carry it
even when they start sessions of their own or are re-parented to init, and
``/proc/<pid>/environ`` finds them all (proc(5)). Killing the run's process group alone leaves
those alive.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.core.launch import kill_group
from bench.core.load import FOREIGN_LOAD_WARN, LoadProbe, share
from bench.core.load import busy_s as _busy_s
from bench.report.io import ResultsError
from bench.report.runs import Run, load_run

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


@dataclasses.dataclass
class AbRun:
    index: int
    side: str
    python: str
    exit_code: int | None
    wall_s: float
    results: str | None
    problem: str | None  # why this run gives no results, None when it does
    foreign_cpu_share: float | None = None  # CPU that other processes took during the run
    attempt: int = 0                        # 0: the first; n: the n-th rerun of a busy run
    strays: int = 0                         # processes the run started that outlived it (ended by ab)

    @functools.cached_property
    def loaded(self) -> Run:
        """The run's results, read once however many looks compare it (not a dataclass field)."""
        return load_run(self.results)

    @property
    def busy(self) -> bool:
        return self.foreign_cpu_share is not None and self.foreign_cpu_share > FOREIGN_LOAD_WARN


# pytest's exit codes that no rerun changes (https://docs.pytest.org/en/stable/reference/exit-codes.html)
ARGUMENT_ERRORS = {4: "pytest refused its command line (usage error)",
                   5: "the pytest arguments select no tests"}


def run_one(index: int, side: str, python: str, pytest_args: list[str], out: Path, timeout_s: float,
             attempt: int = 0) -> AbRun:
    run_dir = out / "runs" / (f"{index:02d}-{side}" + (f"-rerun{attempt}" if attempt else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pytest", *pytest_args, f"--bench-report-dir={run_dir}", "-p", "no:cacheprovider"]
    t0 = time.perf_counter()
    probe = LoadProbe(children_only=True)
    token = f"{os.getpid()}-{run_dir.name}-{time.time_ns()}"
    env = {**os.environ, MARKER: token}
    with open(run_dir / "pytest.log", "w") as log:
        # its own process group, so a time-out kills pytest's group at once; what the run started
        # in groups of its own (torchrun ranks, the minifier, the callgrind child) carries the
        # marker and is ended after it
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc, grace_s=0)  # a time-out: nothing of this run is waited for
            code = None
        except BaseException:  # Ctrl-C or any error here: the run's own session would outlive us
            kill_group(proc, grace_s=0)
            raise
        finally:
            strays = end_strays(token)
    wall = time.perf_counter() - t0
    # CPU the machine spent on anything but this run: another job on a "quiet" machine
    # skews one side of the experiment (a load spanning the B B of A B B A hits B twice)
    foreign = probe.foreign_share()
    results = run_dir / "latest" / "results.json"
    problem = None
    if code is None:
        problem = f"timed out after {timeout_s:.0f} s"
    elif code not in (0, 1):  # 1: some case failed, its row says why; anything else: the run broke
        problem = f"pytest exited {code} (see {run_dir / 'pytest.log'})"
    elif not results.is_file():
        problem = f"pytest exited {code} but wrote no results.json (see {run_dir / 'pytest.log'})"
    return AbRun(index, side, python, code, wall, str(results) if problem is None else None, problem, foreign,
                 attempt, strays)
