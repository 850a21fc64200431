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

``--until-decided`` (sequential design): after the first ``--runs`` blocks the verdict is
looked at after every further A/B block; blocks are added while an unsure metric is still in
reach (``plan.out_of_reach``), up to ``--max-runs`` a side and within ``--budget`` minutes.
Each look tests at its level from an alpha-spending function (``plan``); a metric decided at a
look keeps its verdict and leaves the later looks. Runs are analysed unpaired (Welch): the
A B B A order cancels a linear drift, and at 3-6 runs a side pairing halves the degrees of
freedom for little gain (run-to-run noise here is mostly per process).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

from bench.core.files import atomic_write_json, atomic_write_text
from bench.core.load import FOREIGN_LOAD_WARN
from bench.core.rows import metric_of
from bench.experiments.plan import Plan, mark_out_of_reach, noise_from, out_of_reach, plan_text
from bench.experiments.processes import ARGUMENT_ERRORS, QUIET_WAIT_S, AbRun, check_environment, wait_for_quiet
from bench.experiments.processes import run_one as _run_one
from bench.report.compare import Diff, compare_runs
from bench.report.compare_render import render, render_html
from bench.report.io import ResultsError

DEFAULT_PYTEST_ARGS = ("suites/", "--benchmark-only")


def balanced_order(runs: int) -> list[str]:
    """A B, B A, A B, ...: each pair swaps, so neither side always goes first."""
    return [side for i in range(runs) for side in (("a", "b") if i % 2 == 0 else ("b", "a"))]


def run_experiment(python_a: str, python_b: str, runs: int | Plan, out: Path, pytest_args: list[str] | None = None,
                   timeout_s: float = 3600.0, log=print, rerun_busy: int = 1, judge=None,
                   ) -> tuple[list[AbRun], list[AbRun]]:
    """(the judged runs, the busy attempts they replaced). ``judge(done, reach) -> bool`` says,
    after the first ``runs`` blocks and each block beyond, whether a metric is still undecided
    that more runs can decide, ``reach`` being the most runs a side the plan and the budget
    still allow."""
    plan = runs if isinstance(runs, Plan) else Plan(runs)
    if rerun_busy < 0:
        raise ResultsError(f"--rerun-busy {rerun_busy}: give 0 (never) or more")
    pythons = {"a": python_a, "b": python_b}
    versions = {side: check_environment(py, side) for side, py in pythons.items()}
    args = list(pytest_args or DEFAULT_PYTEST_ARGS)
    out.mkdir(parents=True, exist_ok=True)
    order = balanced_order(plan.max_runs)
    planned = 2 * plan.runs
    if not any(a.startswith("--bench-threads") for a in args) and (os.cpu_count() or 1) <= 4:
        log(f"ab: {os.cpu_count()} cores at torch's default threads: whole-model timings here are two-speed (the "
            "other cores' availability); --bench-threads 1 after -- decides them sooner (docs/verdicts.md)")
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
            # the most runs a side this experiment can still reach: --max-runs, and what the budget affords
            reach = plan.max_runs
            if plan.budget_s is not None:
                reach = min(reach, len(done) // 2 + int((plan.budget_s - elapsed) // block_s))
            if judge is None or not judge(done, reach):
                log(f"ab: stopping after {len(done)} runs: no unsure metric that more runs can decide")
                break
            planned += 2
            log(f"ab: metrics still unsure after {len(done)} runs: adding block {planned // 2}")
        side = order[i]
        i += 1
        run = _run_one(i, side, pythons[side], args, out, timeout_s)
        # before any run has given results, the arguments are the suspect: stop, saying so (later, an
        # exit 4 on one side is that environment's failure, e.g. a plugin B's torch cannot import)
        if run.exit_code in ARGUMENT_ERRORS and not any(r.results for r in done):
            raise ResultsError(f"run {i} ({side.upper()}): {ARGUMENT_ERRORS[run.exit_code]} (pytest exited "
                               f"{run.exit_code}; see {out / 'runs'}/*/pytest.log); the pytest arguments after -- "
                               f"were: {' '.join(args)}")
        while True:
            elapsed = time.perf_counter() - t0
            left = elapsed / (i + len(replaced)) * (planned - i)
            status = "ok" if run.problem is None else f"CRASHED: {run.problem}"
            rerun = run.busy and run.problem is None and run.attempt < rerun_busy
            if run.strays:
                status += f"; {run.strays} process(es) it started outlived it and were ended"
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


class NoUsableRun(ResultsError):
    """Side A has no run that gave results (yet)."""


def compare_experiment(runs: list[AbRun], threshold: float | None = None, alpha: float = 0.05,
                       replaced: list[AbRun] = (), settled: dict | None = None, **allow) -> Diff:
    """compare over all runs (A = base, B = new), crashes and busy runs named; ``settled``
    metrics (decided at an earlier look) keep that verdict."""
    base = [r.loaded for r in runs if r.side == "a" and r.results]
    new = [r.loaded for r in runs if r.side == "b" and r.results]
    crashed = [f"run {r.index} ({r.side.upper()}): {r.problem}" for r in runs if r.problem]
    if not base:  # the old environment does not run: no baseline, no verdict
        raise NoUsableRun("no usable run on side A" + (": " + "; ".join(crashed) if crashed else ""))
    crashes = [{"run": f"run {r.index}", "side": "base" if r.side == "a" else "new", "problem": r.problem}
               for r in runs if r.problem]
    if not new:  # every B run crashed: the verdict is the crash itself
        ids = [r.run_id for r in base]
        diff = Diff(ids, [], [], [], [], [], [], [], [], [f"crashed: {c}" for c in crashed], {}, {}, crashes,
                    alpha=alpha)
        return diff
    diff = compare_runs(base, new, threshold, alpha, settled=settled, **allow)
    diff.crashes = crashes
    diff.warnings += [f"crashed: {c}" for c in crashed]
    diff.warnings += [f"run {r.index} ({r.side.upper()}): other processes took {r.foreign_cpu_share:.0%} of the CPU "
                      "while it ran; its timings are suspect (rerun on a quiet machine)" for r in runs
                      if r.busy]
    diff.warnings += [f"run {r.index} ({r.side.upper()}): {r.strays} process(es) it started outlived it (ended by ab)"
                      for r in runs if r.strays]
    diff.warnings += [f"run {r.index} ({r.side.upper()}) was run again: other processes took "
                      f"{r.foreign_cpu_share:.0%} of the CPU during attempt {r.attempt + 1} (not judged)"
                      for r in replaced]
    return diff


def undecided(diff: Diff) -> list[dict]:
    return [m for m in diff.metrics if m["verdict"] == "unsure"]


def verdict(runs: list[AbRun], out: Path, fmt: str = "table", threshold: float | None = None,
            alpha: float = 0.05, replaced: list[AbRun] = (), note: str | None = None, settled: dict | None = None,
            out_of_reach: dict | None = None, **allow) -> tuple[str, int]:
    """The experiment's verdict; writes compare.json/.md/.html into ``out``."""
    diff = compare_experiment(runs, threshold, alpha, replaced, settled, **allow)
    mark_out_of_reach(diff.metrics, out_of_reach or {})
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
    plan = Plan(args.runs, args.until_decided, args.max_runs, args.budget * 60 if args.budget is not None else None,
                getattr(args, "spending", "pocock"))
    allow = {"allow_profile_mismatch": args.allow_profile_mismatch,
             "allow_machine_mismatch": args.allow_machine_mismatch,
             "allow_selection_mismatch": args.allow_selection_mismatch}
    levels = plan.look_levels(args.alpha)
    instructions = "--bench-instructions" in (args.pytest_args or ())
    if args.noise or plan.until_decided or instructions:  # what each channel can decide, before the first run
        say(plan_text(noise_from(args.noise) if args.noise else {}, plan.runs, levels[0], instructions))
    if plan.until_decided:
        say(f"ab: up to {plan.looks} looks at the verdict ({plan.spending} alpha spending over {args.alpha:g}); "
            f"false-discovery level of each look: {', '.join(f'{x:.3g}' for x in levels)}")
    state: dict = {"settled": {}, "out_of_reach": {}}

    def level_at(done: list[AbRun]) -> tuple[int, float]:
        look = max(1, min(sum(r.side == "a" for r in done), sum(r.side == "b" for r in done)) - plan.runs + 1)
        return look, plan.alpha_at_look(args.alpha, look)

    def judge(done: list[AbRun], reach: int) -> bool:
        look, level = level_at(done)
        try:
            diff = compare_experiment(done, args.threshold, level, settled=state["settled"], **allow)
        except NoUsableRun:
            return True  # side A has no usable run yet
        except ResultsError as exc:  # runs more of the same cannot fix (another machine, nothing compared)
            say(f"ab: stopping: {exc}")
            return False
        per_side = len(done) // 2
        for m in diff.metrics:
            key = (m["case"], m["metric"])
            if m["verdict"] in ("regression", "improvement", "same") and key not in state["settled"]:
                state["settled"][key] = {**m, "note": f"{m.get('note') or ''} [decided at look {look}, {per_side} "
                                                      f"runs a side, level {level:.3g}]".strip()}
        open_ = undecided(diff)
        reachable = []
        for m in open_:
            why = out_of_reach(m, metric_of(m["suite"], m["metric"]).kind, reach, per_side)
            if why:
                state["out_of_reach"][(m["case"], m["metric"])] = why
            else:
                state["out_of_reach"].pop((m["case"], m["metric"]), None)
                reachable.append(m)
        if look == 1:  # the first look: what this experiment's own noise allows
            say(plan_text({(m["case"], m["metric"]): m["sd_log"] for m in diff.metrics if m.get("sd_log")},
                          max(1, per_side), level).replace("ab: at", "ab: measured so far: at"))
        needed = sorted(m["runs_needed"] for m in reachable if m.get("runs_needed"))
        say(f"ab: look {look} after {len(done)} runs (level {level:.3g}): {len(open_)} of {len(diff.metrics)} "
            f"metrics unsure, {len(open_) - len(reachable)} of them out of reach at this noise"
            + (f" (median runs a side to decide the others: {needed[len(needed) // 2]})" if needed else ""))
        return bool(reachable)

    runs, replaced = run_experiment(args.a, args.b, plan, out, args.pytest_args or None, args.timeout_s,
                                    log=say, rerun_busy=args.rerun_busy, judge=judge)
    look, level = level_at(runs)
    note = (f"sequential experiment: {len(runs)} runs, look {look} of up to {plan.looks}; {plan.spending} alpha "
            f"spending over {args.alpha:g}, this look at {level:.3g}; a metric decided at an earlier look keeps "
            "that verdict") if plan.until_decided else None
    text, code = verdict(runs, out, args.format, args.threshold, level if plan.until_decided else args.alpha,
                         replaced, note, state["settled"], state["out_of_reach"], **allow)
    sys.stdout.write(text)
    say(f"ab: reports and compare.md / compare.json / compare.html in {out}")
    return code
