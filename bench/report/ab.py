"""``python -m bench ab``: the upgrade experiment in one command.

The same pytest selection runs N times under interpreter A and N times under interpreter B
(two virtual environments), alternating in a balanced order (A B B A A B ...) so a slow
drift of the machine hits both sides alike. Every run is a fresh process writing its own
report; the verdict is ``compare`` over all runs, the run being the unit of replication.
A run that crashes is recorded and named, and the experiment goes on. A run during which
other processes took more than FOREIGN_LOAD_WARN of the CPU is run again in its place (same
side, same slot of the order), up to ``rerun_busy`` times; the replaced attempts stay in
``ab.json`` and are named in the verdict, but only the last attempt is judged.
"""
from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.report.io import ResultsError, atomic_write_json, atomic_write_text

DEFAULT_PYTEST_ARGS = ("suites/", "--benchmark-only")
FOREIGN_LOAD_WARN = 0.10  # share of all cores other processes may take before a run is suspect
QUIET_WAIT_S = 120.0      # how long a rerun waits for the machine to be quiet
PROBE = "import bench.pytest_plugin, pytest, pytest_benchmark, torch; print(torch.__version__)"


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

    @property
    def busy(self) -> bool:
        return self.foreign_cpu_share is not None and self.foreign_cpu_share > FOREIGN_LOAD_WARN


def _busy_s() -> float | None:
    """Seconds of CPU time the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _share(cpu_s: float, wall_s: float) -> float:
    """CPU seconds as a share of all this machine's cores over ``wall_s``."""
    return cpu_s / (wall_s * (os.cpu_count() or 1))


def wait_for_quiet(max_s: float = QUIET_WAIT_S, window_s: float = 2.0, sleep=time.sleep, busy_s=None) -> float | None:
    """Wait until the machine spends less than FOREIGN_LOAD_WARN of its CPU on anything (no
    run of ours is going) over one ``window_s``, at most ``max_s``; returns the last window's
    busy share (None where /proc/stat cannot be read)."""
    busy_s = busy_s or _busy_s
    share, waited = None, 0.0
    while waited < max_s:
        b0 = busy_s()
        sleep(window_s)
        b1 = busy_s()
        waited += window_s
        if b0 is None or b1 is None:
            return None
        share = _share(b1 - b0, window_s)
        if share <= FOREIGN_LOAD_WARN:
            break
    return share


def balanced_order(runs: int) -> list[str]:
    """A B, B A, A B, ...: each pair swaps, so neither side always goes first."""
    return [side for i in range(runs) for side in (("a", "b") if i % 2 == 0 else ("b", "a"))]


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


def _run_one(index: int, side: str, python: str, pytest_args: list[str], out: Path, timeout_s: float,
             attempt: int = 0) -> AbRun:
    run_dir = out / "runs" / (f"{index:02d}-{side}" + (f"-rerun{attempt}" if attempt else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pytest", *pytest_args, f"--bench-report-dir={run_dir}", "-p", "no:cacheprovider"]
    t0 = time.perf_counter()
    busy0, own0 = _busy_s(), _children_cpu_s()
    with open(run_dir / "pytest.log", "w") as log:
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    wall = time.perf_counter() - t0
    busy1, own1 = _busy_s(), _children_cpu_s()
    # CPU the machine spent on anything but this run: another job on a "quiet" machine
    # skews one side of the experiment (a load spanning the B B of A B B A hits B twice)
    foreign = None
    if busy0 is not None and busy1 is not None and wall > 0:
        foreign = _share(max(0.0, (busy1 - busy0) - (own1 - own0)), wall)
    results = run_dir / "latest" / "results.json"
    problem = None
    if code is None:
        problem = f"timed out after {timeout_s:.0f} s"
    elif code not in (0, 1):  # 1: some case failed, its row says why; anything else: the run broke
        problem = f"pytest exited {code} (see {run_dir / 'pytest.log'})"
    elif not results.is_file():
        problem = f"pytest exited {code} but wrote no results.json (see {run_dir / 'pytest.log'})"
    return AbRun(index, side, python, code, wall, str(results) if problem is None else None, problem, foreign,
                 attempt)


def run_experiment(python_a: str, python_b: str, runs: int, out: Path, pytest_args: list[str] | None = None,
                   timeout_s: float = 3600.0, log=print, rerun_busy: int = 1) -> tuple[list[AbRun], list[AbRun]]:
    """(the judged runs, the busy attempts they replaced)."""
    if runs < 1:
        raise ResultsError(f"--runs {runs}: give at least 1 (3 or more a side for a verdict on timings)")
    if rerun_busy < 0:
        raise ResultsError(f"--rerun-busy {rerun_busy}: give 0 (never) or more")
    pythons = {"a": python_a, "b": python_b}
    versions = {side: check_environment(py, side) for side, py in pythons.items()}
    args = list(pytest_args or DEFAULT_PYTEST_ARGS)
    out.mkdir(parents=True, exist_ok=True)
    order = balanced_order(runs)
    log(f"ab: {len(order)} runs of pytest {' '.join(args)}; A = {python_a} (torch {versions['a']}), "
        f"B = {python_b} (torch {versions['b']}); order {' '.join(s.upper() for s in order)}")
    done: list[AbRun] = []
    replaced: list[AbRun] = []
    t0 = time.perf_counter()
    for i, side in enumerate(order, 1):
        run = _run_one(i, side, pythons[side], args, out, timeout_s)
        while True:
            elapsed = time.perf_counter() - t0
            left = elapsed / (i + len(replaced)) * (len(order) - i)
            status = "ok" if run.problem is None else f"CRASHED: {run.problem}"
            rerun = run.busy and run.problem is None and run.attempt < rerun_busy
            if run.busy:
                status += f"; other processes took {run.foreign_cpu_share:.0%} of the CPU" + \
                    ("; running it again" if rerun else "")
            log(f"ab: run {i} of {len(order)} ({side.upper()}{f', rerun {run.attempt}' if run.attempt else ''}) "
                f"{run.wall_s:.0f} s, {status}; elapsed {elapsed:.0f} s, about {left:.0f} s left")
            if not rerun:
                break
            replaced.append(run)
            share = wait_for_quiet()
            if share is not None and share > FOREIGN_LOAD_WARN:
                log(f"ab: the machine is still {share:.0%} busy after {QUIET_WAIT_S:.0f} s; running it again anyway")
            run = _run_one(i, side, pythons[side], args, out, timeout_s, attempt=run.attempt + 1)
        done.append(run)
        atomic_write_json(out / "ab.json", {"python_a": python_a, "python_b": python_b, "torch": versions,
                                            "pytest_args": args, "order": order,
                                            "runs": [dataclasses.asdict(r) for r in done],
                                            "replaced_busy_runs": [dataclasses.asdict(r) for r in replaced]})
    return done, replaced


def verdict(runs: list[AbRun], out: Path, fmt: str = "table", threshold: float | None = None,
            alpha: float = 0.05, replaced: list[AbRun] = ()) -> tuple[str, int]:
    """compare over all runs (A = base, B = new); writes compare.json/.md/.html into ``out``."""
    from bench.report.compare import compare_runs
    from bench.report.compare_render import render, render_html
    from bench.report.runs import load_run

    base = [load_run(r.results) for r in runs if r.side == "a" and r.results]
    new = [load_run(r.results) for r in runs if r.side == "b" and r.results]
    crashed = [f"run {r.index} ({r.side.upper()}): {r.problem}" for r in runs if r.problem]
    if not base or not new:
        raise ResultsError("no usable run on side " + ("A" if not base else "B") + (": " + "; ".join(crashed)
                                                                                     if crashed else ""))
    diff = compare_runs(base, new, threshold, alpha)
    diff.warnings += [f"crashed: {c}" for c in crashed]
    diff.warnings += [f"run {r.index} ({r.side.upper()}): other processes took {r.foreign_cpu_share:.0%} of the CPU "
                      "while it ran; its timings are suspect (rerun on a quiet machine)" for r in runs
                      if r.busy]
    diff.warnings += [f"run {r.index} ({r.side.upper()}) was run again: other processes took "
                      f"{r.foreign_cpu_share:.0%} of the CPU during attempt {r.attempt + 1} (not judged)"
                      for r in replaced]
    atomic_write_text(out / "compare.json", render(diff, "json"))
    atomic_write_text(out / "compare.md", render(diff, "markdown"))
    atomic_write_text(out / "compare.html", render_html(diff))
    return render(diff, fmt), diff.exit_code


def main(args) -> int:
    out = Path(args.out)
    runs, replaced = run_experiment(args.a, args.b, args.runs, out, args.pytest_args or None, args.timeout_s,
                                    log=lambda text: print(text, file=sys.stderr, flush=True),
                                    rerun_busy=args.rerun_busy)
    text, code = verdict(runs, out, args.format, args.threshold, args.alpha, replaced)
    sys.stdout.write(text)
    print(f"ab: reports and compare.md / compare.json / compare.html in {out}", file=sys.stderr)
    return code
