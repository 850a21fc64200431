"""Greedy tokens against eager's, with the tie rule, and prefill logits against an fp64 copy.

A mode whose tokens differ from eager's is a ``mismatch`` naming the sequence, the first
differing position and eager's logit margin there, unless eager's own top two logits at that
step (top-1 against the token the mode chose) are within the numerics tolerance of the dtype:
then the two greedy paths split at a tie, which rounding may break either way; that is
reported as a tie, and nothing after it is compared (the paths have left each other).
"""
from __future__ import annotations

import dataclasses

import torch

from bench.core import numerics
from bench.core.hardware import LOW_PRECISION


@dataclasses.dataclass
class TokenParity:
    ok: bool
    text: str                  # "" when every token matched
    first_diff: int | None = None
    margin: float | None = None
    tie: bool = False


def judge_tokens(tokens: torch.Tensor, reference: list[torch.Tensor], ref_logits: list[list[torch.Tensor]],
                 dtype: torch.dtype, device: str = "cpu") -> TokenParity:
    """``tokens``: (batch, new) of the mode; ``reference[i]``: eager's tokens of sequence i
    alone (new,), ``ref_logits[i][k]``: eager's logits (vocab,) at step k of sequence i. The
    tolerance is the dtype's (TF32-aware on CUDA), never widened by the mode's own distance
    from eager at the split: a mode whose logits are wrong would then call its own wrong
    token a tie (a planted padding leak did)."""
    atol, rtol = numerics.parity_tolerance(dtype, device)
    ties = []
    for i, want in enumerate(reference):
        got = tokens[i]
        diff = (got != want).nonzero()
        if not len(diff):
            continue
        k = int(diff[0])
        logits = ref_logits[i][k].double()
        top1 = float(logits.max())
        margin = top1 - float(logits[int(got[k])])
        tol = atol + rtol * abs(top1)
        where = f"sequence {i} position {k}: token {int(got[k])} where eager chose {int(want[k])}"
        if margin <= tol:
            ties.append((k, margin, f"{where} (a tie: eager's margin {margin:.3g} <= tolerance {tol:.3g})"))
            continue
        return TokenParity(False, f"{where}; eager's logit margin there {margin:.3g} > tolerance {tol:.3g}",
                           k, margin)
    if ties:
        k, margin, text = min(ties)
        return TokenParity(True, text, k, margin, tie=True)
    return TokenParity(True, "")


def judge_logits(names: list[str], gold: list[torch.Tensor], eager: list[torch.Tensor], mode: list[torch.Tensor],
                 precision: str) -> tuple[bool, str]:
    """Logits (the first token's, each decode step's) by torch._dynamo's fp64 RMSE rule, one
    tensor at a time (``numerics.worst_by_rmse_rule``), with the multiplier of the dtype the
    model ran in (generate() hands logits back upcast to fp32)."""
    dtype = LOW_PRECISION.get(precision)
    within, note, _ = numerics.worst_by_rmse_rule(names, gold, eager, mode, precision, dtype)
    return within, note
