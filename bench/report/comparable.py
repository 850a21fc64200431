"""Whether runs can be compared, and what of the machine changed between them: profiles and
machines (the identity from the hardware, ``bench.core.machine``), a failed fingerprint, a GPU
the new stack can no longer use, a measuring channel on one side only."""
from __future__ import annotations

import json
import re

from bench.report.io import ResultsError
from bench.report.runs import Run, hardware_gpus, has_channel, machine_identity, torch_gpus


def check_comparable(base: list[Run], new: list[Run], allow_profile_mismatch: bool,
                      allow_machine_mismatch: bool) -> list[str]:
    """Refuse runs of different profiles or machines (they measure different workloads or
    hardware) unless allowed; returns the warnings for what was allowed or incomplete."""
    warnings: list[str] = []
    profiles = {r.profile for r in base + new if r.profile}
    if len(profiles) > 1:
        text = (f"runs used different profiles ({', '.join(sorted(profiles))}): the same cases measure different "
                "workloads (batch sizes, sequence lengths)")
        if not allow_profile_mismatch:
            raise ResultsError(text + "; pass --allow-profile-mismatch to compare them anyway")
        warnings.append(text)
    threads = {r.threads for r in base + new}
    if len(threads) > 1:  # the setting, not torch's default (a new torch's own default is part of the upgrade)
        shown = ", ".join(str(t or "default") for t in sorted(threads, key=str))
        text = f"runs used different --bench-threads ({shown}): the same cases ran on different numbers of threads"
        if not allow_profile_mismatch:
            raise ResultsError(text + "; pass --allow-profile-mismatch to compare them anyway")
        warnings.append(text)
    for r in base + new:
        if r.fingerprint.get("fingerprint_error"):
            warnings.append(f"run {r.run_id}: {r.fingerprint['fingerprint_error']}; what changed in its environment "
                            "cannot be listed")
    unknown = [r.run_id for r in base + new if machine_identity(r.fingerprint) is None]
    if unknown:
        warnings.append(f"run(s) {', '.join(unknown)} recorded no machine identity (the fingerprint failed: "
                        f"{_fingerprint_error(base + new)}): compared as if on the same machine")
    machines = {m for r in base + new if (m := machine_identity(r.fingerprint)) is not None}
    if len(machines) > 1:
        text = f"runs come from different machines ({' vs '.join(sorted(machines))}): timings are not comparable"
        if not allow_machine_mismatch:
            raise ResultsError(text + "; pass --allow-machine-mismatch to compare them anyway")
        warnings.append(text)
    for r in base + new:
        if not r.complete:
            warnings.append(f"run {r.run_id} is incomplete (interrupted): cases it did not reach are missing")
    return warnings


def _fingerprint_error(runs: list[Run]) -> str:
    return next((str(r.fingerprint["fingerprint_error"]) for r in runs if r.fingerprint.get("fingerprint_error")),
                "no hardware recorded")


def lost_devices(base: list[Run], new: list[Run]) -> list[dict]:
    """GPUs the machine has that the base side's torch used and the new side's cannot: the new
    stack lost the GPU (a CPU wheel, a driver mismatch). A regression of the new side, named."""
    def usable(runs):
        counts = [torch_gpus(r.fingerprint) for r in runs]
        return None if any(c is None for c in counts) else min(counts)

    had, has = usable(base), usable(new)
    if not had or has is None or has >= had:
        return []
    # the GPUs must still be there: the new runs' hardware lists them (a CPU box compared under
    # --allow-machine-mismatch, or a run without a recorded machine, is not a lost GPU)
    there = [hardware_gpus(r.fingerprint) for r in new]
    if any(n is None for n in there) or min(there) < had:
        return []
    machine = next((machine_identity(r.fingerprint) for r in new if machine_identity(r.fingerprint)), "this machine")
    why = next((r.fingerprint.get("fingerprint_error") for r in new if r.fingerprint.get("fingerprint_error")), None)
    return [{"kind": "lost_gpu", "base": had, "new": has,
             "reason": f"the new side's torch can use {has} of the {had} GPU(s) the base side's torch used on the same "
                       f"hardware ({machine}): the new stack lost the GPU (a CPU-only wheel, or a driver / CUDA "
                       "mismatch; torch.cuda.is_available() is False there)" + (f"; {why}" if why else "")}]


def run_failures(base: list[Run], new: list[Run]) -> list[dict]:
    """Failures of a new run as a whole (its report's "RUN FAILED": a loss curve off its committed
    reference, a required GPU missing, the user's model unmeasured) that no base run had: no row
    holds them, so without this they would pass compare unseen."""
    had = {_failure_kind(f) for r in base for f in r.failures}
    out, seen = [], set()
    for r in new:
        for f in r.failures:
            kind = _failure_kind(f)
            # a known failure fixed upstream fails a strict run, but it is news of the upgrade, not a regression
            if kind not in had and kind not in seen and not f.startswith("--bench-strict-known-failures"):
                seen.add(kind)
                out.append({"kind": "run_failure", "base": None, "new": r.run_id,
                            "reason": f"new run {r.run_id} failed as a whole: {f}"})
    return out


def _failure_kind(text: str) -> str:
    """What a run failure is about, without its counts and first examples: the option or check
    before ": " or " (" (``--bench-require cuda``, ``--hf-model M``, the loss curve of a case
    left its committed reference), so the same failure on both sides matches however worded."""
    return re.split(r": | \(", text, maxsplit=1)[0].strip()


def channel_warnings(base: list[Run], new: list[Run]) -> list[str]:
    """The instruction channel (``--bench-instructions``) on one side only: its counts are
    judged over the runs that had it, or not at all; said once, not per case."""
    b, n = (sum(has_channel(r, "instructions") for r in runs) for runs in (base, new))
    if (b == 0) == (n == 0) and (b in (0, len(base)) and n in (0, len(new))):
        return []
    if b == 0 or n == 0:
        return [f"instruction counts were taken on the {'new' if b == 0 else 'base'} side only (--bench-instructions "
                f"in {b} of {len(base)} base and {n} of {len(new)} new runs): they are not judged"]
    return [f"instruction counts were taken in {b} of {len(base)} base and {n} of {len(new)} new runs "
            "(--bench-instructions): judged over those runs"]


REFERENCE_MOVED = 0.10  # the reference's median moving more than this between the sides is named


def reference_warnings(base: list[Run], new: list[Run]) -> list[str]:
    """Where the torch-independent reference itself moved between the sides (another Python or
    OpenSSL, a machine in another state), the ``*_norm`` twins carry that move: say so."""
    def level(runs):
        values = sorted(row["reference_ms"] for r in runs for row in r.rows.values()
                        if isinstance(row.get("reference_ms"), (int, float)) and row["reference_ms"] > 0)
        return values[len(values) // 2] if values else None

    out = []
    ids = {side: {json.dumps(r.fingerprint.get("reference"), sort_keys=True) for r in runs if r.fingerprint.get(
        "reference")} for side, runs in (("base", base), ("new", new))}
    if ids["base"] and ids["new"] and ids["base"] != ids["new"]:
        out.append(f"the reference's software differs between the sides ({' | '.join(sorted(ids['base']))} vs "
                   f"{' | '.join(sorted(ids['new']))}): the *_norm twins compare different yardsticks")
    b, n = level(base), level(new)
    if b and n and abs(n / b - 1) > REFERENCE_MOVED:
        out.append(f"the torch-independent reference itself took {n / b:.2f}x as long in the new runs (median "
                   f"{b:.3g} -> {n:.3g} ms): the machine's state moved between the sides, and the *_norm twins "
                   "take that out of their timings")
    return out
