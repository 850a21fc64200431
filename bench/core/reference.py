"""A torch-independent reference timed interleaved with every timed case: the normalised twin.

A custom op is decided fast because its baseline (the native composite) is timed interleaved in
the same process: whatever state the machine is in (a neighbour on the VM, the clock frequency,
the process's own placement), both see it, and their ratio keeps little of it. Whole models,
graph modes and generation have no such partner. This module gives them one: a fixed piece of
work that does not touch torch (SHA-256 of 512 KiB, compute-bound in OpenSSL's C code, and a copy
of 8 MiB, memory-bound in libc's memcpy, both called from Python's standard library), timed
between the case's rounds. A row then carries ``reference_ms`` (the reference's median over the
case's time window) and, per judged timing column ``X``, ``X_norm = X / reference_ms``, which
``compare`` judges as a metric of its own (``bench.core.rows``: ``*_norm``).

What it cannot cancel: anything that moves the case but not the reference (the torch under
test, which is the point, but also a placement of the case's own memory). What would move the
reference between A and B: another Python or OpenSSL build, a machine in another state; its
identity is in the fingerprint (``reference``) and ``compare`` says when its time moved.

Its cost is kept under ``MAX_SHARE`` of a case's timed rounds: the reference runs before every
k-th round, k sized from one call of each. Paired timing (a case against its interleaved baseline)
times it right after the rounds instead, so both sides of a pair see the same cache.
"""
from __future__ import annotations

import hashlib
import math
import platform
import ssl
import statistics
import time

SHA_BYTES = 1 << 19      # SHA-256 over 512 KiB: compute
COPY_BYTES = 8 << 20     # an 8 MiB copy: memory bandwidth, beyond most L2 caches
MAX_SHARE = 0.10         # the reference's share of a case's timed rounds, at most
MIN_SAMPLES = 5          # reference calls per case, at least

_SHA_INPUT = bytes(range(256)) * (SHA_BYTES // 256)
_COPY_INPUT = bytearray(COPY_BYTES)


def work() -> None:
    """The reference's fixed work (nothing here may call into torch)."""
    hashlib.sha256(_SHA_INPUT).digest()
    bytes(_COPY_INPUT)


def identity() -> dict:
    """What the reference's speed depends on besides the machine: the fingerprint's ``reference``."""
    return {"work": f"sha256 {SHA_BYTES >> 10} KiB + copy {COPY_BYTES >> 20} MiB", "python": platform.python_version(),
            "openssl": ssl.OPENSSL_VERSION}


class Reference:
    """Reference samples interleaved with one case's rounds: :meth:`hook` returns a per-round
    callable that times the reference before every k-th round."""

    def __init__(self):
        self.samples: list[float] = []

    def tick(self) -> None:
        t0 = time.perf_counter()
        work()
        self.samples.append(time.perf_counter() - t0)

    def every(self, call_s: float | None) -> int:
        """k: one reference call per k rounds keeps its cost under MAX_SHARE of the rounds' time
        (``call_s``: one round's time; the first reference call, cold, calibrates)."""
        if not self.samples:
            self.tick()
        return 1 if not call_s else max(1, math.ceil(min(self.samples) / (MAX_SHARE * call_s)))

    def hook(self, k: int):
        """A per-round setup: the reference every ``k``-th round."""
        count = [0]

        def setup():
            if count[0] % k == 0:
                self.tick()
            count[0] += 1
        return setup

    def record(self, row: dict | None) -> None:
        """``reference_ms`` and ``reference_rounds`` into ``row`` (the twins follow in Row.finalize);
        a case too short for MIN_SAMPLES interleaved calls gets the rest right after its rounds."""
        if row is None or not self.samples:
            return
        while len(self.samples) < MIN_SAMPLES + 1:
            self.tick()
        row["reference_ms"] = statistics.median(self.samples[1:] or self.samples) * 1e3
        row["reference_rounds"] = len(self.samples)


def interleave(record: dict | None):
    """The per-round setup that times the reference between a case's rounds when the case
    records into a row (``record``, which holds the warm-up's ``call_ms_estimate``); else
    nothing. Pass it to :func:`record_reference` after the rounds."""
    if record is None:
        return lambda: None
    ref = Reference()
    est = record.get("call_ms_estimate")
    hook = ref.hook(ref.every(est / 1e3 if est else None))
    hook.reference = ref
    return hook


def record_reference(hook, record: dict | None) -> None:
    ref = getattr(hook, "reference", None)
    if ref is not None:
        ref.record(record)


def reference_after(record: dict | None) -> None:
    """The reference timed right after a case's rounds instead of between them: for paired timing
    (a case against its baseline, ``run_benchmark_against``), where a reference call before one
    side of the pair would leave that side a cold cache (its copy evicts it)."""
    if record is not None:
        Reference().record(record)
