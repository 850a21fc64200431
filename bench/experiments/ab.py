"""``python -m bench ab``: the upgrade experiment in one command.

The same pytest selection runs N times under interpreter A and N times under interpreter B
(two virtual environments), alternating in a balanced order (A B B A A B ...) so a slow
drift of the machine hits both sides alike. Every run is a fresh process writing its own
report; the verdict is ``compare`` over all runs, the run being the unit of replication.
A run that crashes is recorded and named, and the experiment goes on; a crash on B only is a
regression (an upgrade that crashes is the worst one). A run during which
other processes took more than FOREIGN_LOAD_WARN of the CPU is run again in its place (same
side, same slot of the order), up to ``rerun_busy`` times; the replaced attempts stay in
``ab.json`` and are named in the verdict, but only the last attempt is judged.

``--until-decided`` (sequential design): after the first ``--runs`` blocks, the verdict is
looked at after every further A/B block, and blocks are added while a metric is ``unsure``,
up to ``--max-runs`` a side and within ``--budget`` minutes. Repeated looks at growing data
inflate false alarms, so the false-discovery level ``alpha`` is split evenly over the
planned looks (Bonferroni over looks: each look tests at alpha / looks, so a wrong claim at
any look stays below alpha). Runs are analysed unpaired (Welch): the A B B A order already
cancels a linear drift of the machine in the side means, and at 3-6 runs a side a paired
analysis would halve the degrees of freedom for little gain (run-to-run noise here is mostly
per process, not a slow drift).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.core.files import atomic_write_json, atomic_write_text
from bench.core.load import FOREIGN_LOAD_WARN, LoadProbe, share
from bench.core.load import busy_s as _busy_s
from bench.experiments.plan import Plan, noise_from, plan_text
from bench.report.compare import Diff, compare_runs
from bench.report.compare_render import render, render_html
from bench.report.io import ResultsError
from bench.report.runs import load_run

DEFAULT_PYTEST_ARGS = ("suites/", "--benchmark-only")
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


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


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
    probe = LoadProbe(children_only=True)
    with open(run_dir / "pytest.log", "w") as log:
        # its own process group, so a time-out kills what the run started too (torchrun ranks,
        # the minifier's children), not only pytest
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code = None
        except BaseException:  # Ctrl-C or any error here: the run's own session would outlive us
            _kill_group(proc)
            raise
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
                 attempt)


def run_experiment(python_a: str, python_b: str, runs: int | Plan, out: Path, pytest_args: list[str] | None = None,
                   timeout_s: float = 3600.0, log=print, rerun_busy: int = 1, judge=None,
                   ) -> tuple[list[AbRun], list[AbRun]]:
    """(the judged runs, the busy attempts they replaced). ``judge(done) -> bool`` says,
    after each block beyond the first ``runs``, whether metrics are still undecided."""
    plan = runs if isinstance(runs, Plan) else Plan(runs)
    if rerun_busy < 0:
        raise ResultsError(f"--rerun-busy {rerun_busy}: give 0 (never) or more")
    pythons = {"a": python_a, "b": python_b}
    versions = {side: check_environment(py, side) for side, py in pythons.items()}
    args = list(pytest_args or DEFAULT_PYTEST_ARGS)
    out.mkdir(parents=True, exist_ok=True)
    order = balanced_order(plan.max_runs)
    planned = 2 * plan.runs
    log(f"ab: {planned} runs of pytest {' '.join(args)}"
        + (f", then blocks of 2 while metrics are unsure (up to {len(order)} runs)" if plan.until_decided else "")
        + f"; A = {python_a} (torch {versions['a']}), B = {python_b} (torch {versions['b']}); "
        f"order {' '.join(s.upper() for s in order[:planned])}{' ...' if plan.until_decided else ''}")
    done: list[AbRun] = []
    replaced: list[AbRun] = []
    t0 = time.perf_counter()
    i = 0
    while i < len(order):
        if i >= planned:  # --until-decided: another block only if it is needed and fits
            elapsed = time.perf_counter() - t0
            block_s = 2 * elapsed / max(1, len(done))
            if plan.budget_s is not None and elapsed + block_s > plan.budget_s:
                log(f"ab: stopping: another block (about {block_s:.0f} s) would pass the {plan.budget_s / 60:g} "
                    "minute budget")
                break
            if judge is None or not judge(done):
                log(f"ab: stopping after {len(done)} runs: no metric is unsure")
                break
            planned += 2
            log(f"ab: metrics still unsure after {len(done)} runs: adding block {planned // 2}")
        side = order[i]
        i += 1
        run = _run_one(i, side, pythons[side], args, out, timeout_s)
        while True:
            elapsed = time.perf_counter() - t0
            left = elapsed / (i + len(replaced)) * (planned - i)
            status = "ok" if run.problem is None else f"CRASHED: {run.problem}"
            rerun = run.busy and run.problem is None and run.attempt < rerun_busy
            if run.busy:
                status += f"; other processes took {run.foreign_cpu_share:.0%} of the CPU" + \
                    ("; running it again" if rerun else "")
            log(f"ab: run {i} of {planned} ({side.upper()}{f', rerun {run.attempt}' if run.attempt else ''}) "
                f"{run.wall_s:.0f} s, {status}; elapsed {elapsed:.0f} s, about {left:.0f} s left")
            if not rerun:
                break
            replaced.append(run)
            quiet = wait_for_quiet()
            if quiet is not None and quiet > FOREIGN_LOAD_WARN:
                log(f"ab: the machine is still {quiet:.0%} busy after {QUIET_WAIT_S:.0f} s; running it again anyway")
            run = _run_one(i, side, pythons[side], args, out, timeout_s, attempt=run.attempt + 1)
        done.append(run)
        atomic_write_json(out / "ab.json", {"python_a": python_a, "python_b": python_b, "torch": versions,
                                            "pytest_args": args, "order": order[:planned],
                                            "plan": dataclasses.asdict(plan),
                                            "runs": [dataclasses.asdict(r) for r in done],
                                            "replaced_busy_runs": [dataclasses.asdict(r) for r in replaced]})
    return done, replaced


def compare_experiment(runs: list[AbRun], threshold: float | None = None, alpha: float = 0.05,
                       replaced: list[AbRun] = (), **allow) -> Diff:
    """compare over all runs (A = base, B = new), crashes and busy runs named."""
    base = [load_run(r.results) for r in runs if r.side == "a" and r.results]
    new = [load_run(r.results) for r in runs if r.side == "b" and r.results]
    crashed = [f"run {r.index} ({r.side.upper()}): {r.problem}" for r in runs if r.problem]
    if not base:  # the old environment does not run: no baseline, no verdict
        raise ResultsError("no usable run on side A" + (": " + "; ".join(crashed) if crashed else ""))
    crashes = [{"run": f"run {r.index}", "side": "base" if r.side == "a" else "new", "problem": r.problem}
               for r in runs if r.problem]
    if not new:  # every B run crashed: the verdict is the crash itself
        ids = [r.run_id for r in base]
        diff = Diff(ids, [], [], [], [], [], [], [], [], [f"crashed: {c}" for c in crashed], {}, {}, crashes,
                    alpha=alpha)
        return diff
    diff = compare_runs(base, new, threshold, alpha, **allow)
    diff.crashes = crashes
    diff.warnings += [f"crashed: {c}" for c in crashed]
    diff.warnings += [f"run {r.index} ({r.side.upper()}): other processes took {r.foreign_cpu_share:.0%} of the CPU "
                      "while it ran; its timings are suspect (rerun on a quiet machine)" for r in runs
                      if r.busy]
    diff.warnings += [f"run {r.index} ({r.side.upper()}) was run again: other processes took "
                      f"{r.foreign_cpu_share:.0%} of the CPU during attempt {r.attempt + 1} (not judged)"
                      for r in replaced]
    return diff


def undecided(diff: Diff) -> list[dict]:
    return [m for m in diff.metrics if m["verdict"] == "unsure"]


def verdict(runs: list[AbRun], out: Path, fmt: str = "table", threshold: float | None = None,
            alpha: float = 0.05, replaced: list[AbRun] = (), note: str | None = None, **allow) -> tuple[str, int]:
    """The experiment's verdict; writes compare.json/.md/.html into ``out``."""
    diff = compare_experiment(runs, threshold, alpha, replaced, **allow)
    if note:
        diff.warnings.append(note)
    atomic_write_text(out / "compare.json", render(diff, "json"))
    atomic_write_text(out / "compare.md", render(diff, "markdown"))
    atomic_write_text(out / "compare.html", render_html(diff))
    return render(diff, fmt), diff.exit_code


def _terminate_like_ctrl_c(signum, frame):
    """SIGTERM (a CI job cancelled, ``kill``) ends ab as Ctrl-C does, so the running run's
    process group is killed with it instead of living on in its own session."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(args) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    try:
        return _main(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args) -> int:
    out = Path(args.out)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    plan = Plan(args.runs, args.until_decided, args.max_runs, args.budget * 60 if args.budget is not None else None)
    allow = {"allow_profile_mismatch": args.allow_profile_mismatch,
             "allow_machine_mismatch": args.allow_machine_mismatch,
             "allow_selection_mismatch": args.allow_selection_mismatch}
    alpha = plan.alpha_per_look(args.alpha)
    if args.noise or plan.until_decided:
        say(plan_text(noise_from(args.noise) if args.noise else {}, plan.runs, alpha))
    if plan.until_decided:
        say(f"ab: up to {plan.looks} looks at the verdict, each at false-discovery level {alpha:.3g} "
            f"({args.alpha:g} split over the looks)")

    def judge(done: list[AbRun]) -> bool:
        try:
            diff = compare_experiment(done, args.threshold, alpha, **allow)
        except ResultsError:
            return True  # a side has no usable run yet
        open_ = undecided(diff)
        if len(done) <= 2 * plan.runs:  # the first look: what this experiment's own noise allows
            say(plan_text({(m["case"], m["metric"]): m["sd_log"] for m in diff.metrics if m.get("sd_log")},
                          max(1, len(done) // 2), alpha).replace("ab: at", "ab: measured so far: at"))
        needed = sorted(m["runs_needed"] for m in open_ if m.get("runs_needed"))
        say(f"ab: look after {len(done)} runs: {len(open_)} of {len(diff.metrics)} metrics unsure"
            + (f" (median runs a side to decide: {needed[len(needed) // 2]})" if needed else ""))
        return bool(open_)

    runs, replaced = run_experiment(args.a, args.b, plan, out, args.pytest_args or None, args.timeout_s,
                                    log=say, rerun_busy=args.rerun_busy, judge=judge)
    note = (f"sequential experiment: {len(runs)} runs after up to {plan.looks} looks; each look tested at "
            f"alpha {alpha:.3g}") if plan.until_decided else None
    text, code = verdict(runs, out, args.format, args.threshold, alpha, replaced, note, **allow)
    sys.stdout.write(text)
    say(f"ab: reports and compare.md / compare.json / compare.html in {out}")
    return code
