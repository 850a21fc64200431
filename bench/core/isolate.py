"""A case that can take the whole process down, tried first in a child process.

Some failures are not exceptions: a compiled CPU kernel whose bounds check throws inside an
OpenMP region ends the process with SIGABRT ("terminate called recursively"; pytorch/pytorch
#195402), a segfault in a generated kernel ends it with SIGSEGV. In the pytest process that would
end the run and lose its report. A case known to build such kernels (transformers' flex_attention
path on CPU) is first run in a child; a child killed by a signal makes the row an ``error`` that
names the signal and the child's last words, and the run goes on. A child that ends normally
returns its outcome (ok, or the exception's whole text), and Inductor's on-disk caches it filled
make the parent's own run of a passing case cheap.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

MARK = "BENCH-ISOLATED-RESULT "


def try_in_child(target: str, payload: dict, timeout_s: float = 900.0) -> dict:
    """Run ``target`` ("module:function", called with ``payload``) in a child interpreter.
    Returns ``{"crashed": why}`` when the child died by a signal or timed out, else the
    function's own result (a JSON-able dict) or ``{"error": text, "type": name}`` for an exception
    it raised."""
    code = ("import json, sys, importlib\n"
            "mod, fn = sys.argv[1].split(':')\n"
            "payload = json.loads(sys.argv[2])\n"
            "try:\n"
            "    out = getattr(importlib.import_module(mod), fn)(payload)\n"
            "except Exception as exc:\n"
            "    out = {'error': f'{type(exc).__name__}: {exc}', 'type': type(exc).__name__}\n"
            f"print({MARK!r} + json.dumps(out, default=str), flush=True)\n")
    try:
        done = subprocess.run([sys.executable, "-c", code, target, json.dumps(payload)], capture_output=True,
                              text=True, timeout=timeout_s, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"crashed": f"the child process did not finish within {timeout_s:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    last = [s.strip() for s in done.stderr.splitlines() if s.strip() and not s.startswith((" ", "Thread", "File"))]
    words = "; ".join(last[:2])[:300]
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return {"crashed": f"the case killed its process with {name} ({words or 'no message'}): it ran in a child "
                           "process, so the run goes on"}
    return {"crashed": f"the child process exited with {done.returncode} before it answered ({words})"}
