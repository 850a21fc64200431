"""Comparing what two runs of a model computed: its outputs and the gradients of a fixed weighted
sum of them (``outputs_and_grads``), and the worst error between two such lists against the
per-dtype parity tolerance (``bench.core.numerics``). Graph parity and the ops' compile / export
check both judge by it."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench.core import numerics


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def outputs_and_grads(runner: Callable, params: Sequence[torch.nn.Parameter], inputs: tuple):
    """Outputs, then gradients of a fixed weighted sum of outputs wrt floating inputs and
    parameters."""
    leaves = tuple(x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
                   for x in inputs)
    outs = _tensors(runner(*leaves))
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(o.shape, generator=gen).to(o.device, o.dtype) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights) if o.requires_grad)
    wrt = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad] + list(params)
    grads = []
    if torch.is_tensor(loss) and wrt:
        grads = [g if g is not None else torch.zeros_like(p)
                 for g, p in zip(torch.autograd.grad(loss, wrt, allow_unused=True), wrt)]
    return [o.detach() for o in outs], grads


def tensor_excess(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[float, list[float]]:
    """(max abs error, each tensor's excess over its own tolerance) between two lists of tensors;
    a structure or shape mismatch is an infinite excess for every tensor."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return float("inf"), [float("inf")] * max(len(a), 1)
    err, excess = 0.0, []
    for x, y in zip(a, b):
        if not x.numel():
            excess.append(0.0)
            continue
        atol, rtol = numerics.parity_tolerance(x.dtype, x.device)
        d = numerics.abs_diff(x, y)  # a NaN on one side only is an infinite error
        err = max(err, float(d.max()))
        excess.append(float((d - (atol + rtol * x.detach().double().cpu().abs().nan_to_num())).max()))
    return err, excess


def worst_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[float, float]:
    """(max abs error, max excess over tolerance) between two lists of tensors."""
    err, excess = tensor_excess(a, b)
    return err, max(excess, default=0.0)
