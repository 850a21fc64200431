"""Loss curves judged between runs: does the same seeded training produce the same curve under the
new stack as under the old one?

A training row stores its per-step losses (``loss_curve``: the Trainer's logged losses, the
sharded world's mean loss of every step). Each run's row is healthy on its own; an upgrade that
changes a kernel, a default (an optimizer's foreach path, an attention backend, a dropout RNG, a
TF32 default) moves the curve. ``compare`` judges the curve as one object, the way Megatron-LM
checks every step against golden values (``tests/functional_tests``) and TorchTitan compares
curves between configurations (``scripts/loss_compare.py``):

- ``same``: every step of the new curve within the band of the base curve;
- ``changed``: the first step beyond the band, the largest relative difference, the final loss
  of both sides;
- ``unsure``: the sides logged different numbers of steps (another plan), nothing to align.

The band is relative to the base loss. It is the larger of the device's declared band and the
spread the base's runs show among themselves (several runs a side: whatever two runs of the old
environment differ by is not the upgrade's doing). Each new run is held to it on its own, so a
new side whose runs disagree with each other is a change, not a wider band. The declared bands: on CPU, A/A runs of
the same environment are bitwise equal (measured: docs/measurements.md, "Loss curves"), so the
band is a rounding-level 1e-6; on CUDA, reductions with atomics are nondeterministic, so 1e-3
(declared, not yet measured on a GPU: the GPU validation script measures it).

A changed curve is a finding, not a regression: an upgrade may change rounding legitimately. It
says where the curve left the old one, so a changed default is found at its step, not after a
week of training.
"""
from __future__ import annotations

import math
import statistics

CURVE = "loss_curve"
BANDS = {"cpu": 1e-6, "cuda": 1e-3}


def band_for(device: str | None) -> float:
    kind = str(device or "cpu").split(":")[0]
    return BANDS.get(kind, BANDS["cuda"])


def _curves(rows: list[dict]) -> list[list[float]]:
    """The rows' curves; a step whose loss was not finite (NaN, inf, or null once saved) is inf,
    so it can never read as within the band."""
    def value(v) -> float:
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    return [[value(v) for v in r[CURVE]] for r in rows if isinstance(r.get(CURVE), list) and r[CURVE]]


def _rel(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return 0.0 if a == b else math.inf  # a non-finite step on one side only is the largest change
    return abs(a - b) / max(abs(b), 1e-12)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _spread(curves: list[list[float]]) -> float:
    """The largest relative difference between two runs of one side, step by step."""
    if len(curves) < 2 or len({len(c) for c in curves}) > 1:
        return 0.0
    return max((_rel(x, y) for first in curves[:1] for other in curves[1:] for x, y in zip(other, first)),
               default=0.0)


def judge_curve(case: str, suite: str, brows: list[dict], nrows: list[dict]) -> dict | None:
    """The curve verdict of one case, or None when a side stored no curve. Every new run is
    held to the base's band on its own: a new side whose runs disagree among themselves (an
    upgrade that made training nondeterministic, one run that diverged) is a change, and the
    median of its runs cannot hide one."""
    base, new = _curves(brows), _curves(nrows)
    if not base or not new:
        return None
    device = brows[0].get("device")
    base_spread = _spread(base)
    band = max(band_for(device), base_spread)
    entry = {"case": case, "suite": suite, "device": device, "band": band, "runs_base": len(base),
             "runs_new": len(new)}
    lengths = {len(c) for c in base + new}
    if len(lengths) > 1:
        return {**entry, "verdict": "unsure", "steps": sorted(lengths),
                "note": f"the runs logged different numbers of steps ({sorted(lengths)}): not the same training"}
    if not math.isfinite(base_spread):
        return {**entry, "verdict": "unsure", "band": None,
                "note": "a base run's curve is not finite where another's is: the base is no reference"}
    b = [statistics.median(step) for step in zip(*base)]
    n = [statistics.median(step) for step in zip(*new)]
    rel = [max(_rel(run[i], b[i]) for run in new) for i in range(len(b))]  # the farthest new run, step by step
    beyond = [i for i, d in enumerate(rel) if d > band]
    # a step that was not finite is inf here and stays in the note; JSON gets null (it has no inf)
    entry.update(steps=len(b), max_rel_diff=_finite(max(rel)), final_base=_finite(b[-1]), final_new=_finite(n[-1]))
    if not beyond:
        return {**entry, "verdict": "same", "first_step": None,
                "note": f"every step of every new run within {band:.2g} of the base loss ({len(b)} steps)"}
    i = beyond[0]
    far = max(range(len(new)), key=lambda k: _rel(new[k][i], b[i]))
    apart = f"; the new runs differ among themselves by up to {_spread(new):.2g}" if len(new) > 1 else ""
    return {**entry, "verdict": "changed", "first_step": i,
            "note": f"leaves the base curve at step {i} ({b[i]:.6g} -> {new[far][i]:.6g} in new run {far + 1} of "
                    f"{len(new)}, {rel[i]:.2g} relative > band {band:.2g}); largest difference {max(rel):.2g}; final "
                    f"loss {b[-1]:.6g} -> {n[-1]:.6g}{apart}"}
