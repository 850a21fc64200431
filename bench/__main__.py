"""Command line: ``python -m bench {report,compare,ab,history,peak,reference}``."""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from bench.report.io import ResultsError


def _report(args) -> int:
    from bench.report import build_report, load_results

    data = load_results(args.results)
    out = Path(args.out) if args.out else Path(args.results).resolve().parent
    _output_folder(out, "--out")
    # rebuilding in place must not rewrite the source file itself
    build_report(data, out, write_results=(out / "results.json").resolve() != Path(args.results).resolve())
    print(f"report written to {out}")
    return 0


def _compare(args) -> int:
    from bench.report.compare import compare_runs, latest_in_history
    from bench.report.compare_render import render, render_html
    from bench.report.io import atomic_write_text
    from bench.report.runs import load_run

    if args.base or args.new:
        if args.files or not (args.base and args.new):
            raise ResultsError("give runs either as BASE NEW or as --base A1 [A2 ...] --new B1 [B2 ...]")
        base_paths, new_paths = args.base, args.new
    elif args.baseline == "latest":
        if len(args.files) != 1:
            raise ResultsError("with --baseline latest give exactly one results file (the new run)")
        new_paths = args.files
        base_paths = [latest_in_history(Path(args.reports_dir), load_run(args.files[0]))]
        print(f"baseline: {base_paths[0]} (newest earlier run of the same profile and machine)", file=sys.stderr)
    else:
        if len(args.files) != 2:
            raise ResultsError("give two results files, BASE and NEW (or --base ... --new ..., "
                               "or --baseline latest NEW)")
        base_paths, new_paths = [args.files[0]], [args.files[1]]
    _check_verdict_options(args)
    _output_file(args.html, "--html")
    diff = compare_runs([load_run(p) for p in base_paths], [load_run(p) for p in new_paths], args.threshold,
                        args.alpha, args.allow_profile_mismatch, args.allow_machine_mismatch,
                        args.allow_selection_mismatch)
    sys.stdout.write(render(diff, args.format))
    if args.html:
        atomic_write_text(args.html, render_html(diff))
    return diff.exit_code


def _output_file(path: str | None, option: str) -> None:
    """Refuse an output file path that cannot be written before any work: a verdict printed and
    then lost to a write error would leave exit 2 where the verdict's exit code belongs."""
    if path and Path(path).is_dir():
        raise ResultsError(f"{option} {path}: is a folder; give a file path, e.g. {Path(path) / 'compare.html'}")


def _output_folder(path: Path, option: str) -> None:
    if path.exists() and not path.is_dir():
        raise ResultsError(f"{option} {path}: is a file; give a folder (created if missing)")


def _peak(args) -> int:
    """The GEMM roof per device and dtype, through the code the reports use, one line before
    and one after each measurement. A dtype this CPU emulates (no native bf16 / fp16, or its
    kernels capped away) is left out unless --emulated asks for it: its figure is not the
    device's low-precision throughput."""
    import torch

    from bench.core.flops import peak_with_reference, vendor_peak_tflops
    from bench.core.hardware import DTYPES as PEAK_DTYPES
    from bench.core.hardware import parse_devices, probe

    caps = probe()
    devices = parse_devices(args.device, option="--device") if args.device is not None else \
        ["cpu"] + (["cuda:0"] if caps.cuda else [])
    dtypes = args.dtype.split(",")
    if unknown := [d for d in dtypes if d not in PEAK_DTYPES]:
        raise ResultsError(f"--dtype {','.join(unknown)}: valid: {', '.join(PEAK_DTYPES)} (comma separated)")
    if args.n is not None and args.n < 16:
        raise ResultsError(f"--n {args.n}: give a matrix size of 16 or more (default 1024 on CPU, 8192 on CUDA)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}", flush=True)
    print(f"{'device':8} {'dtype':5} {'n':>6} {'kernel':>11} {'median_ms':>10} {'TFLOP/s':>9} {'timer_ms':>10} "
          f"{'ratio':>6} vendor", flush=True)
    bad = 0
    for device in devices:
        reason = caps.device_reason(device)
        if reason:
            print(f"{device:8} skipped: {reason}", flush=True)
            continue
        for dtype in dtypes:
            emulated = caps.cpu_emulation_note(device, dtype)
            if emulated and not args.emulated:
                print(f"{device:8} {dtype:5} skipped, {emulated}; --emulated times it",
                      flush=True)
                continue
            n = args.n
            # a progress line the result overwrites on a terminal; a line of its own in a pipe or a log
            print(f"{device:8} {dtype:5} timing{' (EMULATED)' if emulated else ''} ...",
                  end="\r" if sys.stdout.isatty() else "\n", flush=True)
            r = peak_with_reference(device, dtype, n)
            name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
            vendor = vendor_peak_tflops(name, dtype)
            print(f"{device:8} {dtype:5} {r['n']:>6} {r['kernel']:>11} {r['median_ms']:>10.3f} {r['tflops']:>9.4g} "
                  f"{r['reference_median_ms']:>10.3f} {r['ratio']:>6.3f} {vendor or '-'}"
                  + ("  EMULATED: not this CPU's low-precision throughput" if emulated else ""), flush=True)
            bad += not 0.9 <= r["ratio"] <= 1.1
    if bad:
        print(f"warning: {bad} roof(s) disagree with torch.utils.benchmark by more than 10 %")
    return 0


def _history(args) -> int:
    from bench.report.history import analyse, find_runs, recent_worse
    from bench.report.history_render import render, render_html
    from bench.report.io import atomic_write_text

    if args.recent < 1:
        raise ResultsError(f"--recent {args.recent}: give at least 1")
    _output_file(args.html, "--html")
    unreadable: list[str] = []
    groups = analyse(find_runs(args.folders or ["reports/history"], unreadable), args.threshold)
    for problem in unreadable:  # a night cut off while writing: said, and the rest judged
        print(f"history: left out {problem}", file=sys.stderr)
    bad = recent_worse(groups, args.recent)
    sys.stdout.write(render(groups, args.format, bad))
    if args.html:
        atomic_write_text(args.html, render_html(groups, bad))
    return 1 if bad else 0


def _ab(args) -> int:
    from bench.experiments.ab import main as ab_main

    _check_verdict_options(args)
    if not 0 < args.timeout_s < float("inf"):
        raise ResultsError(f"--timeout-s {args.timeout_s}: give the bound on one run in seconds, above 0")
    _output_folder(Path(args.out), "--out")
    return ab_main(args)


def _check_verdict_options(args) -> None:
    if args.threshold is not None and not 0 < args.threshold < 10:
        raise ResultsError(f"--threshold {args.threshold}: must be a fraction above 0, e.g. 0.1 for 10 %")
    if not 0 < args.alpha < 0.5:
        raise ResultsError(f"--alpha {args.alpha}: give a level between 0 and 0.5, e.g. 0.05")


def _verdict_options(p: argparse.ArgumentParser) -> None:
    """The options every verdict shares (compare and ab), declared once."""
    p.add_argument("--threshold", type=float, default=None,
                   help="change fraction that counts for timings (default: each metric's own, 0.10 for timings)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="false-discovery rate over the comparison's tests, for changes and for 'same' (default 0.05)")
    p.add_argument("--allow-profile-mismatch", action="store_true",
                   help="compare runs of different profiles (they measure different workloads)")
    p.add_argument("--allow-machine-mismatch", action="store_true",
                   help="compare runs of different machines (CPU or GPU model, device count)")
    p.add_argument("--allow-selection-mismatch", action="store_true",
                   help="a case missing from the new side is not a correctness change (you selected fewer cases)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")


def _reference(args) -> int:
    from bench.report import load_results
    from bench.report.references import update

    written = update(load_results(args.results), args.reason, Path(args.dir))
    for path in written:
        print(f"reference written: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:  # ab: everything after -- goes to pytest
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("report", help="rebuild a report folder from a results file")
    p.add_argument("results", help="results.json (or a pytest-benchmark JSON file)")
    p.add_argument("--out", help="folder to write (default: the results file's folder)")
    p.set_defaults(func=_report)
    exits = ("exit codes: 0 no regression shown (unsure metrics included), 1 a correctness regression, a "
             "performance regression or (ab) a new side that crashed more often, 2 unusable input (an unreadable "
             "file, runs of other profiles or machines without --allow-*)")
    p = sub.add_parser("compare", help="whole-run diff: environment, correctness, numerics, every metric; "
                                       "exit 1 on a status regression or a significant slowdown", epilog=exits)
    p.add_argument("files", nargs="*", metavar="BASE.json NEW.json")
    p.add_argument("--base", nargs="+", metavar="RUN.json", help="several base runs (the run is the unit)")
    p.add_argument("--new", nargs="+", metavar="RUN.json", help="several new runs")
    p.add_argument("--baseline", choices=("latest",),
                   help="take BASE from reports/history: the newest earlier run of the same profile and machine")
    p.add_argument("--reports-dir", default="reports", help="where --baseline latest looks for reports/history "
                                                             "(default reports, under the current folder)")
    _verdict_options(p)
    p.add_argument("--html", metavar="PATH", help="also write a self-contained compare.html")
    p.set_defaults(func=_compare)
    p = sub.add_parser("ab", help="A/B experiment: the suites N times in each of two environments, alternating; "
                                  "then compare over all runs",
                       usage="python -m bench ab --a PYTHON_A --b PYTHON_B [--runs N] [--out DIR] [-- PYTEST_ARGS]",
                       epilog=exits)
    p.add_argument("--a", required=True, metavar="PYTHON_A", help="interpreter of the old environment (base)")
    p.add_argument("--b", required=True, metavar="PYTHON_B", help="interpreter of the new environment")
    p.add_argument("--runs", type=int, default=3, help="runs per environment (default 3: the fewest for a "
                                                        "run-level verdict)")
    p.add_argument("--out", default="reports/ab", help="folder for every run's report and the verdict (default "
                                                        "reports/ab, under the current folder)")
    p.add_argument("--timeout-s", type=float, default=3600.0, help="bound on one run (default 3600)")
    p.add_argument("--rerun-busy", type=int, default=1, metavar="N",
                   help="run a run again, up to N times, when other processes took over 10%% of the CPU "
                        "while it ran (default 1; 0: never)")
    p.add_argument("--until-decided", action="store_true",
                   help="after --runs, add A/B blocks while metrics are unsure and --max-runs / --budget allow")
    p.add_argument("--max-runs", type=int, default=None, metavar="N",
                   help="with --until-decided: most runs a side (default: 3 x --runs, at least 6)")
    p.add_argument("--budget", type=float, default=None, metavar="MINUTES",
                   help="with --until-decided: no new block starts after this many minutes")
    p.add_argument("--spending", choices=("pocock", "obrien-fleming", "bonferroni"), default="pocock",
                   help="with --until-decided: how --alpha is spent over the looks (default pocock: Lan-DeMets "
                        "Pocock-type, more of it early; bonferroni: alpha / looks each)")
    p.add_argument("--noise", metavar="COMPARE.json",
                   help="an earlier A/A's compare.json: its run-to-run spread sizes the plan printed first")
    _verdict_options(p)
    p.set_defaults(func=_ab)
    p = sub.add_parser("history", help="trends and change points over every run; exit 1 on a change toward "
                                       "worse in the last --recent runs")
    p.add_argument("folders", nargs="*", metavar="DIR", help="folders of results files (default reports/history, "
                                                             "under the current folder)")
    p.add_argument("--recent", type=int, default=3, help="a change toward worse this many runs back or newer "
                                                         "fails (default 3)")
    p.add_argument("--threshold", type=float, default=None, help="smallest step that counts for timings "
                                                                 "(default: each metric's own, 10 %% for timings)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained history.html")
    p.set_defaults(func=_history)
    p = sub.add_parser("peak", help="measured GEMM roof per device and dtype, checked against torch.utils.benchmark")
    p.add_argument("--device", help="comma list of cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="fp32,bf16")
    p.add_argument("--n", type=int, default=None, help="matrix size (default 1024 on CPU, 8192 on CUDA)")
    p.add_argument("--emulated", action="store_true", help="also time dtypes this CPU emulates (slow)")
    p.set_defaults(func=_peak)
    p = sub.add_parser("reference", help="record the loss curves of a run's training rows as the committed "
                                         "references every later run is checked against")
    p.add_argument("action", choices=("update",))
    p.add_argument("results", help="results.json of the run whose curves become the references")
    p.add_argument("--reason", required=True, help="why (kept in the file with the earlier reasons)")
    p.add_argument("--dir", default="references", help="the references folder (default: references)")
    p.set_defaults(func=_reference)
    args = parser.parse_args(argv)
    args.pytest_args = pytest_args
    try:
        return args.func(args)
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 -- a crash of the tool is never a verdict (exit 1)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"error: unexpected {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno}; "
              "please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
