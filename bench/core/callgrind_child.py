"""The valgrind'd child of :class:`bench.core.callgrind.InstructionCounter`: reads one JSON
request a line on stdin (``builder``, ``case``, ``calls``, ``cap_s``), answers one JSON line on
stdout (instructions per call of each callable, ``skipped`` or ``error``). See
``bench.core.callgrind``. The builders (in the scenarios) load the run's plugins named in the
case (``bench.registry.load_plugins``)."""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

OUT = Path(os.environ.get("BENCH_CALLGRIND_OUT", "."))
_client = ctypes.CDLL(os.environ["BENCH_CALLGRIND_CLIENT"]) if os.environ.get("BENCH_CALLGRIND_CLIENT") else None


def _latest_total() -> int:
    """The ``totals:`` of the dump just written (callgrind numbers them cg.out.1, .2, ...;
    each is read and removed at once, so the one there is the latest)."""
    path = max(OUT.glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            path.unlink()
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


WARMUP_CALLS = 16  # Python 3.11+ specialises bytecode after a few executions: measured, the first count
# after 3 warm-up calls was 6 % above the next one; after 16 they agree within 0.1 %
WARMUP_S = 3.0    # ... unless the calls are slow (then the interpreter's share is small): at least 2 calls


class TooLarge(Exception):
    pass


def _count(fn, calls: int, cap_s: float = float("inf")) -> tuple[int, int]:
    """(instructions of ``calls`` calls, calls) -- fewer calls when one is slow (a count repeats
    from one call; its two counts say so)."""
    fn()
    t0 = time.perf_counter()
    fn()  # valgrind without instrumentation is nearly as slow as with it on SIMD-heavy code
    one = time.perf_counter() - t0
    calls = calls if one < 0.3 else 1
    est = 2 * (one * (calls + 3) + min(WARMUP_S, one * WARMUP_CALLS))  # this count and the repeat
    if est > cap_s:
        raise TooLarge(f"one call took {one:.1f} s there, the two counts would take "
                       f"{est:.0f} s > the {cap_s:g} s cap")
    t0, done = time.perf_counter(), 2
    while done < WARMUP_CALLS and time.perf_counter() - t0 < WARMUP_S:
        fn()
        done += 1
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
    return _latest_total(), calls


def _answer(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv=None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    torch.set_num_threads(1)
    if not torch._C._valgrind_supported_platform():
        _answer({"error": "this torch build has no valgrind support (torch._C._valgrind_supported_platform())"})
        return
    calls = 5

    def empty():
        return None

    total, calls = _count(empty, calls)
    baseline = total / calls
    _answer({"baseline_per_call": baseline})
    # The first count of real work in a fresh child reads high, warm-up calls or not: measured on
    # add_bias (fp32, check inputs), the first request's two counts were 391k and 18 % apart, every
    # later request's 359k and under 0.2 % apart (the native composite, counted second, agreed from
    # the start). So the first request counts one call of its first callable and throws that count
    # away (then: 360k, 0.25 % apart; one call keeps the extra time small against the cap).
    first = True
    for line in sys.stdin:
        try:
            req = json.loads(line)
            module, _, name = req["builder"].partition(":")
            callables = getattr(importlib.import_module(module), name)(req["case"])
            calls = int(req["calls"])
            counts, spreads, cap = {}, {}, float(req.get("cap_s", float("inf"))) / max(1, len(callables))
            if first:  # the count thrown away (above)
                _count(next(iter(callables.values())), 1, cap)
                first = False
            for k, fn in callables.items():  # counted twice: each row carries its own repeatability
                per_call = []
                for _ in range(2):
                    total, n = _count(fn, calls, cap)
                    per_call.append(max(0.0, total / n - baseline))
                a, b = per_call
                counts[k], spreads[k] = (a + b) / 2, abs(a - b) / max(min(a, b), 1.0)
            _answer({"instructions": counts, "spread": spreads, "calls": n, "threads": torch.get_num_threads(),
                     "baseline_per_call": baseline})
        except TooLarge as exc:
            _answer({"skipped": str(exc)})
        except Exception as exc:  # one case's failure is that case's answer; the child goes on
            _answer({"error": f"{type(exc).__name__}: {exc}"[:500], "trace": traceback.format_exc()[-1500:]})


if __name__ == "__main__":
    main()
