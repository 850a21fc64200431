"""The op checker's cost checks: right results at a cost worth knowing. A failure is a finding
(``AutogradReport.findings``), not a wrong result, unless the op declares the property.

- ``saved_memory``: bytes kept for backward against the native composite's.
- ``recompiles``: under ``torch.compile(dynamic=None)`` a third batch size must not compile
  again (the second may: that is how automatic dynamic shapes start).
"""
from __future__ import annotations

import types

import torch

from bench.ops import variants as V
from bench.ops.checks import HELD, NA, VIOLATED, Check, err

SAVED_FACTOR = 2.0        # fail above 2x the composite's saved bytes ...
SAVED_SLACK_BYTES = 1024  # ... plus this much (scalars, shapes, small buffers)


def check_saved_memory(fn, inputs, reference) -> Check:
    from bench.ops.measure import saved_tensor_mib

    saved = saved_tensor_mib(fn, V.detached(inputs)) * 2**20
    detail = {"saved_bytes": saved}
    if reference is None:
        return Check("saved_memory", NA, f"keeps {saved:.0f} bytes for backward; no reference composite to judge it",
                     detail)
    try:
        ref = saved_tensor_mib(reference, V.detached(inputs)) * 2**20
    except Exception as exc:
        return Check("saved_memory", NA, f"the reference composite does not run: {err(exc)}", detail)
    detail["reference_saved_bytes"] = ref
    if saved > SAVED_FACTOR * ref + SAVED_SLACK_BYTES:
        return Check("saved_memory", VIOLATED, f"keeps {saved:.0f} bytes for backward, the composite {ref:.0f} "
                                             f"(allowed {SAVED_FACTOR:g}x + {SAVED_SLACK_BYTES} bytes)", detail)
    return Check("saved_memory", HELD, f"{saved:.0f} bytes vs composite's {ref:.0f}", detail)


def _fresh(fn):
    """A wrapper with its own code object: Dynamo caches per code object, so every check
    starts from an empty cache without resetting anyone else's compiled code."""
    def call(*args):
        return fn(*args)

    return types.FunctionType(call.__code__.replace(), call.__globals__, "call", None, call.__closure__)


def _resized(inputs, batch: int, n: int) -> tuple:
    """The inputs with their batch dimension (dim 0 of size ``n``, 2-D or more) at ``batch``;
    weights and per-feature tensors stay as they are."""
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[0] == n:
            reps = -(-batch // x.shape[0])
            x = x.detach().repeat(reps, *([1] * (x.dim() - 1)))[:batch].clone()
        out.append(x)
    return tuple(out)


def check_recompiles(fn, inputs) -> Check:
    sized = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.dim() >= 2]
    if not sized:
        return Check("recompiles", NA, "no batch-like (2-D or more) input to vary")
    n = inputs[sized[0]].shape[0]
    compiles = [0]

    def counting_backend(gm, example_inputs):
        compiles[0] += 1
        return gm.forward

    fresh = _fresh(fn)
    compiled = torch.compile(fresh, backend=counting_backend, dynamic=None)
    after = []
    try:
        for batch in (n, n + 1, n + 2):
            compiled(*_resized(inputs, batch, n))
            after.append(compiles[0])
    except Exception as exc:
        # only Dynamo's own refusal is "cannot trace"; the op's exception under compile is a failure
        from torch._dynamo import exc as dynamo_exc

        if isinstance(exc, (dynamo_exc.Unsupported, dynamo_exc.TorchDynamoException)):
            return Check("recompiles", NA, f"torch.compile cannot trace the op: {err(exc)}")
        return Check("recompiles", VIOLATED, f"raised under torch.compile: {err(exc)}")
    detail = {"graphs_after_each_batch_size": after}
    if after[0] == 0:
        return Check("recompiles", NA, "torch.compile captured no graph of the op", detail)
    if after[2] > after[1]:
        detail["guard"] = _guard_failure(fresh)
        return Check("recompiles", VIOLATED, f"compiled again for every new batch size ({n}, {n + 1}, {n + 2}: "
                                           f"{after} graphs): it specialises on the batch size"
                                           + (f"; guard that failed: {detail['guard']}" if detail["guard"] else ""),
                     detail)
    return Check("recompiles", HELD, f"graphs after batch sizes {n}, {n + 1}, {n + 2}: {after}", detail)


def _guard_failure(fn) -> str:
    """The last guard Dynamo recorded as failing for ``fn``'s code (torch._dynamo.utils.guard_failures)."""
    try:
        from torch._dynamo.utils import guard_failures

        reasons = guard_failures.get(fn.__code__) or []
        return str(reasons[-1]).splitlines()[0][:200] if reasons else ""
    except Exception:  # a private structure: its absence costs the detail, not the check
        return ""
