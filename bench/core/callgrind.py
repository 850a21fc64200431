"""Instruction counts under valgrind's callgrind: one valgrind'd Python for a whole run.

Wall time on a shared VM resolves changes of 25-50 %; an instruction count does not care what
the neighbours do. Starting a valgrind'd Python that imports torch costs 45 s with callgrind's
instrumentation on from the start (what ``torch.utils.benchmark.Timer.collect_callgrind`` pays
per call), so :class:`InstructionCounter` starts one child for the run, with instrumentation
off (14 s here), and turns it on only around each measurement through callgrind's client
requests (``CALLGRIND_START_INSTRUMENTATION``; valgrind's manual, "Callgrind: client
requests"), compiled into a tiny helper library with the machine's C compiler. Where no
compiler or ``valgrind/callgrind.h`` exists, the child runs instrumented from the start
(same counts, slower start); the row says which (``instructions_mode``).

Per measurement the child builds the case's callables (``builder``: ``"module:function"``
returning ``{metric: callable}``), runs 16 warm-up calls, starts instrumentation, runs one
more uncounted call (the code is translated again, instrumented), then counts ``calls`` calls
with collection toggled on (``torch._C._valgrind_toggle``) and dumps the counts
(``_valgrind_toggle_and_dump_stats``). The instructions of the loop itself (an empty callable
measured the same way) are subtracted. Intra-op threads are pinned to 1: OpenMP workers that
spin while they wait make counts of a multi-threaded op vary by 40 % (measured on
``torch.tanh``), one thread repeats within 0.05 %.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install valgrind` (Debian/Ubuntu) or your system's package manager"

_CLIENT_C = r"""
#include <valgrind/callgrind.h>
void bench_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }
void bench_stop_instrumentation(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void bench_zero_stats(void) { CALLGRIND_ZERO_STATS; }
"""


def valgrind_missing() -> str | None:
    """Why instructions cannot be counted here (one line), or None."""
    if shutil.which("valgrind") is None:
        return f"--bench-instructions needs valgrind, which is not on PATH: {INSTALL_HINT}"
    return None


def client_library(cache: Path | None = None) -> Path | None:
    """The client-request helper, built once per machine (None: no compiler or header)."""
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch-hf-bench"
    lib = cache / "callgrind_client.so"
    if lib.exists():
        return lib
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    src = cache / "callgrind_client.c"
    src.write_text(_CLIENT_C)
    tmp = cache / f"callgrind_client.{os.getpid()}.so"
    done = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(tmp), str(src)], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    os.replace(tmp, lib)
    return lib


BUILD_ALLOWANCE_S = 60.0  # building a case in the child (valgrind'd, uninstrumented) beyond its counting cap


class CountError(RuntimeError):
    """The child could not count a case (its error, or valgrind's last words)."""


class InstructionCounter:
    """One valgrind'd child for the run; :meth:`count` sends it a case and waits for the counts."""

    def __init__(self, start_timeout_s: float = 300.0):
        reason = valgrind_missing()
        if reason:
            raise RuntimeError(reason)
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
        self.library = client_library()
        self.mode = "on demand (client requests)" if self.library else "from the start (no C compiler or header)"
        # what did not fit, not tried again: (builder, model) that gave no count at all -> why;
        # (builder, model, phase) -> [(batch size, why)] of calls the child found too slow
        self.no_count: dict[tuple, str] = {}
        self.too_slow: dict[tuple, list[tuple[int | None, str]]] = {}

    def _start(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   BENCH_CALLGRIND_OUT=str(self.workdir), BENCH_CALLGRIND_CLIENT=str(self.library or ""))
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               f"--instr-atstart={'no' if self.library else 'yes'}",
               f"--callgrind-out-file={self.workdir}/cg.out", sys.executable, "-m", "bench.core.callgrind_child"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.workdir / "valgrind.log", "w")  # noqa: SIM115  (the child's stderr for its lifetime; closed in close())
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, env=env, start_new_session=True)
        self._reply(self.start_timeout_s)  # the child's hello: torch imported, the empty loop counted

    def _reply(self, timeout_s: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            words = self._last_words()
            self.close(kill=True)
            raise CountError(f"the callgrind child {f'timed out after {timeout_s:g} s' if not ready else 'died'}: "
                             f"{words}")
        return json.loads(line)

    def _last_words(self) -> str:
        try:
            text = (self.workdir / "valgrind.log").read_text()
        except OSError:
            return "(no log)"
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("==")]
        return " | ".join(lines[-3:])[-400:] or "(valgrind printed nothing else)"

    def count(self, builder: str, case: dict, calls: int = 3, cap_s: float = 600.0) -> dict:
        """``{metric: instructions per call}`` of the callables ``builder(case)`` returns, and
        ``calls``, ``threads``, ``mode``, ``wall_s``; or ``skipped`` (why) when the counts
        would take longer than ``cap_s`` (the child times one instrumented call first; past
        ``cap_s`` plus building time it is killed, and the next case starts a fresh one).
        Raises CountError naming the cause of any other failure."""
        subject = (builder, case.get("model") or case.get("op"))
        phase, batch = case.get("phase"), case.get("batch_size")
        known = self._known_too_large(subject, phase, batch)
        if known:
            return {"skipped": f"too large under callgrind: {known}"}
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps({"builder": builder, "case": case, "calls": calls, "cap_s": cap_s}) + "\n")
        self.proc.stdin.flush()
        try:
            reply = self._reply(cap_s + BUILD_ALLOWANCE_S)
        except CountError as exc:
            if "timed out" not in str(exc):
                raise
            self.no_count[subject] = f"a case of {subject[1]} gave no count within {cap_s + BUILD_ALLOWANCE_S:g} s"
            return {"skipped": f"too large under callgrind: {self.no_count[subject]}"}
        if "error" in reply:
            raise CountError(reply["error"])
        if "skipped" in reply:
            why = reply["skipped"]
            if phase is not None:
                where = ", ".join(f"{k} {case[k]}" if k == "batch_size" else str(case[k])
                                  for k in ("mode", "dtype", "batch_size") if case.get(k))
                why = f"{subject[1]} {phase}: {why}" + (f" (measured on its {where} row)" if where else "")
                self.too_slow.setdefault(subject + (phase,), []).append((batch, why))
            return {"skipped": f"too large under callgrind: {why}"}
        return {**reply, "mode": self.mode, "wall_s": time.perf_counter() - t0}

    def _known_too_large(self, subject: tuple, phase: str | None, batch: int | None) -> str | None:
        """Why a case cannot fit, known from an earlier one: the model gave no count at all (any
        dtype, mode, phase, batch); or a call was too slow at this phase (or at inference, for a
        training step, which does the forward and more) with a batch no larger, in any dtype and
        mode (the other rows run the same work within ~2x)."""
        if subject in self.no_count:
            return self.no_count[subject]
        for ph in dict.fromkeys((phase, "inference" if phase == "train" else phase)):
            for bs, why in self.too_slow.get(subject + (ph,), []):
                if bs is None or batch is None or bs <= batch:
                    return why
        return None

    def close(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                if kill:
                    raise OSError("killed")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.workdir, ignore_errors=True)


# A call under valgrind is 100x (elementwise ops) to 2000x (the MLP's GEMMs, measured) slower
# than native, with or without instrumentation: valgrind's virtual CPU has no AVX-512, so torch
# dispatches its AVX2 kernels, and SIMD code is what valgrind runs slowest. The parent skips
# only what even 100x puts past the cap; the child times a call itself and says when the
# counts would take longer than the cap.
SLOWDOWN = 100.0
# counted calls per callable (after the warm-up): counts repeat to < 0.5 % (docs/verdicts.md, "Instruction counts")
CALLS = 3


def record_instructions(row, session, builder: str, case: dict, call_s: float | None, callables: int = 1,
                        not_counted: str | None = None) -> None:
    """With ``--bench-instructions``: count ``builder(case)``'s callables in the run's callgrind
    child and put them in ``row`` (``instructions``, ...). CUDA rows and cases estimated to
    cost more than the profile's cap say why they have no count; a count that fails is the
    row's warning and ``instructions_skipped`` (the op is not at fault); ``compare`` then
    shows the count as lost against a base that had one."""
    if not session.settings.instructions:
        return
    if str(row.get("device", "cpu")) != "cpu":
        row["instructions_skipped"] = "CUDA row: valgrind does not run the CUDA driver; counted on CPU rows only"
        return
    if not_counted:
        row["instructions_skipped"] = not_counted
        return
    cap = session.profile.instr_case_cap_s
    est = (call_s or 0.0) * callables * 2 * (CALLS + 3) * SLOWDOWN  # a lower bound (see SLOWDOWN)
    if est > cap:
        row["instructions_skipped"] = (f"too large under callgrind: estimated {est:.0f} s > {cap:g} s for the "
                                       f"{session.profile.name} profile")
        return
    try:
        case = dict(case, inputs=session.profile.instr_inputs, plugins=list(session.settings.plugins))
        got = session.instruction_counter().count(builder, case, CALLS, cap)
    except CountError as exc:  # a measurement that failed, not a fault of the op or model: said, not failed
        row["instructions_skipped"] = f"count failed: {exc}"
        row["warnings"] = "; ".join(filter(None, [row.get("warnings"), f"instruction count failed: {exc}"]))
        return
    if "skipped" in got:
        row["instructions_skipped"] = got["skipped"] + f" ({session.profile.name} profile)"
        return
    row.update({k: round(v) for k, v in got["instructions"].items()})
    row.update({f"{k}_spread": v for k, v in got["spread"].items()})  # two counts of each, relative
    row["instructions_threads"] = got["threads"]
    row["instructions_inputs"] = session.profile.instr_inputs
    row["instructions_wall_s"] = round(got["wall_s"], 2)
