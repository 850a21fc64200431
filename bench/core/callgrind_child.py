"""The valgrind'd child of :class:`bench.core.callgrind.InstructionCounter`: reads one JSON
request a line on stdin (``builder``, ``case``, ``calls``), answers one JSON line on stdout
(instructions per call of each callable, or ``error``). See ``bench.core.callgrind``."""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import sys
import traceback
from pathlib import Path

import torch

OUT = Path(os.environ.get("BENCH_CALLGRIND_OUT", "."))
_client = ctypes.CDLL(os.environ["BENCH_CALLGRIND_CLIENT"]) if os.environ.get("BENCH_CALLGRIND_CLIENT") else None
_dumps = [0]


def _latest_total() -> int:
    """The ``totals:`` of the dump just written (callgrind numbers them cg.out.1, .2, ...)."""
    _dumps[0] += 1
    path = OUT / f"cg.out.{_dumps[0]}"
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            path.unlink()
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


WARMUP_CALLS = 16  # Python 3.11+ specialises bytecode after a few executions: measured, the first count
# after 3 warm-up calls was 6 % above the next one; after 16 they agree within 0.1 %


def _count(fn, calls: int) -> int:
    for _ in range(WARMUP_CALLS):  # not instrumented: caches, lazy initialisation, specialisation
        fn()
    if _client:
        _client.bench_start_instrumentation()
    fn()  # translated again, now instrumented; not counted
    if _client:
        _client.bench_zero_stats()
    torch._C._valgrind_toggle()
    for _ in range(calls):
        fn()
    torch._C._valgrind_toggle_and_dump_stats()
    if _client:
        _client.bench_stop_instrumentation()
    return _latest_total()


def _answer(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--plugin", action="append", default=[])
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if not torch._C._valgrind_supported_platform():
        _answer({"error": "this torch build has no valgrind support (torch._C._valgrind_supported_platform())"})
        return
    from bench.registry import load_plugin

    for spec in a.plugin:
        load_plugin(spec)
    calls = 5

    def empty():
        return None

    baseline = _count(empty, calls) / calls
    _answer({"baseline_per_call": baseline})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            module, _, name = req["builder"].partition(":")
            callables = getattr(importlib.import_module(module), name)(req["case"])
            calls = int(req["calls"])
            counts, spreads = {}, {}
            for k, fn in callables.items():  # counted twice: each row carries its own repeatability
                a, b = (max(0.0, _count(fn, calls) / calls - baseline) for _ in range(2))
                counts[k], spreads[k] = (a + b) / 2, abs(a - b) / max(min(a, b), 1.0)
            _answer({"instructions": counts, "spread": spreads, "calls": calls, "threads": torch.get_num_threads(),
                     "baseline_per_call": baseline})
        except Exception as exc:  # one case's failure is that case's answer; the child goes on
            _answer({"error": f"{type(exc).__name__}: {exc}"[:500], "trace": traceback.format_exc()[-1500:]})


if __name__ == "__main__":
    main()
