"""Input transformations for the op checker: fp64 copies, casts, layout variants, batches."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def tensors_of(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in tensors_of(o)]
    return []


def differentiable_positions(inputs) -> list[int]:
    """Floating tensors that require grad; all floating tensors if none is marked."""
    floats = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    marked = [i for i in floats if inputs[i].requires_grad]
    return marked or floats


def _remake(inputs, fn) -> tuple:
    diff = set(differentiable_positions(inputs))
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor):
            y = fn(x.detach())
            if i in diff:
                y = y.requires_grad_(True)
            out.append(y)
        else:
            out.append(x)
    return tuple(out)


def detached(inputs, keep_grad: bool = False) -> tuple:
    """Fresh copies (same values, dtype, device); differentiable ones require grad if asked."""
    if keep_grad:
        return _remake(inputs, lambda x: x.clone())
    return tuple(x.detach().clone() if isinstance(x, torch.Tensor) else x for x in inputs)


def as_fp64(inputs) -> tuple:
    return _remake(inputs, lambda x: x.to(torch.float64) if x.is_floating_point() else x.clone())


def cast(inputs, dtype) -> tuple:
    return _remake(inputs, lambda x: x.to(dtype) if x.is_floating_point() else x.clone())


def to_device(inputs, device) -> tuple:
    return _remake(inputs, lambda x: x.to(device))


def _noncontiguous_transposed(x: torch.Tensor) -> torch.Tensor:
    """Same values, column-major storage (non-contiguous)."""
    return x.transpose(-1, -2).contiguous().transpose(-1, -2)


def _noncontiguous_strided(x: torch.Tensor) -> torch.Tensor:
    """Same values, every other element of a larger buffer (stride 2 in the last dim)."""
    buf = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
    buf[..., ::2] = x
    return buf[..., ::2]


def layout_variants(inputs) -> Iterator[tuple[str, tuple]]:
    """(label, inputs) pairs with one input in another layout but the same values."""
    max_dim = max((x.dim() for x in inputs if isinstance(x, torch.Tensor)), default=0)
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor) or x.numel() == 0:
            continue
        makers = []
        if x.dim() >= 2 and x.shape[-1] > 1 and x.shape[-2] > 1:
            makers.append((f"transposed input {i}", _noncontiguous_transposed))
        if x.dim() >= 1 and x.shape[-1] > 1:
            makers.append((f"strided input {i}", _noncontiguous_strided))
        if 0 < x.dim() < max_dim:
            makers.append((f"broadcast input {i} (leading singleton dim)", lambda t: t.unsqueeze(0)))
        for label, make in makers:
            variant = list(detached(inputs, keep_grad=True))
            new = make(x.detach())
            variant[i] = new.requires_grad_(True) if variant[i].requires_grad else new
            if label.startswith("broadcast") or not new.is_contiguous():
                yield label, tuple(variant)


def stacked(inputs, n: int) -> tuple | None:
    """``n`` perturbed copies of every tensor input, stacked on a new dim 0 (for vmap)."""
    if not any(isinstance(x, torch.Tensor) for x in inputs):
        return None
    gen = torch.Generator().manual_seed(1)
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor):
            copies = [x.detach()]
            for _ in range(n - 1):
                noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype) if x.is_floating_point() else 0
                copies.append(x.detach() + 0.1 * noise if x.is_floating_point() else x.detach())
            out.append(torch.stack(copies))
        else:
            out.append(x)
    return tuple(out)
