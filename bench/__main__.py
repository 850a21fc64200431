"""Command line: ``python -m bench {report,compare,peak}``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report.io import ResultsError


def _report(args) -> int:
    from bench.report import build_report, load_results

    data = load_results(args.results)
    out = Path(args.out) if args.out else Path(args.results).resolve().parent
    # rebuilding in place must not rewrite the source file itself
    build_report(data, out, write_results=(out / "results.json").resolve() != Path(args.results).resolve())
    print(f"report written to {out}")
    return 0


def _compare(args) -> int:
    from bench.report.compare import compare, latest_in_history, render
    from bench.report.io import load_results

    if args.baseline == "latest":
        if len(args.files) != 1:
            raise ResultsError("with --baseline latest give exactly one results file (the new run)")
        new_path = Path(args.files[0])
        base_path = latest_in_history(Path(args.reports_dir), exclude=new_path)
    else:
        if len(args.files) != 2:
            raise ResultsError("give two results files, BASE and NEW (or --baseline latest NEW)")
        base_path, new_path = map(Path, args.files)
    if not 0 < args.threshold < 10:
        raise ResultsError(f"--threshold {args.threshold}: must be a fraction above 0, e.g. 0.1 for 10 %")
    verdict = compare(load_results(base_path), load_results(new_path), args.threshold, args.alpha)
    sys.stdout.write(render(verdict, args.format))
    return 1 if len(verdict.regressions) else 0


def _peak(args) -> int:
    import torch

    from bench.devices import parse_devices, probe
    from bench.flops import peak_with_reference, vendor_peak_tflops

    devices = parse_devices(args.device) if args.device else ["cpu"] + (["cuda:0"] if probe().cuda else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'device':8} {'dtype':5} {'n':>6} {'median_ms':>10} {'TFLOP/s':>9} {'timer_ms':>10} {'ratio':>6} vendor")
    bad = 0
    for device in devices:
        reason = probe().device_reason(device)
        if reason:
            print(f"{device:8} skipped: {reason}")
            continue
        for dtype in args.dtype.split(","):
            r = peak_with_reference(device, dtype, args.n)
            name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
            vendor = vendor_peak_tflops(name, dtype)
            print(f"{device:8} {dtype:5} {r['n']:>6} {r['median_ms']:>10.3f} {r['tflops']:>9.3f} "
                  f"{r['reference_median_ms']:>10.3f} {r['ratio']:>6.3f} {vendor or '-'}")
            bad += not 0.9 <= r["ratio"] <= 1.1
    if bad:
        print(f"warning: {bad} roof(s) disagree with torch.utils.benchmark by more than 10 %")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("report", help="rebuild a report folder from a results file")
    p.add_argument("results", help="results.json (or a pytest-benchmark JSON file)")
    p.add_argument("--out", help="folder to write (default: the results file's folder)")
    p.set_defaults(func=_report)
    p = sub.add_parser("compare", help="regression verdict between two runs; exit 1 on a significant regression")
    p.add_argument("files", nargs="+", metavar="BASE.json NEW.json")
    p.add_argument("--baseline", choices=("latest",), help="take BASE from reports/history (newest other run)")
    p.add_argument("--reports-dir", default="reports")
    p.add_argument("--threshold", type=float, default=0.10, help="slowdown fraction that counts (default 0.10)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    p.set_defaults(func=_compare)
    p = sub.add_parser("peak", help="measured GEMM roof per device and dtype, checked against torch.utils.benchmark")
    p.add_argument("--device", help="comma list of cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="fp32,bf16")
    p.add_argument("--n", type=int, default=None, help="matrix size (default 1024 on CPU, 8192 on CUDA)")
    p.set_defaults(func=_peak)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
