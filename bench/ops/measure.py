"""Forward+backward timing and saved-activation memory of an op vs its native composite."""
from __future__ import annotations

from collections.abc import Callable

import torch


def _leaves(inputs: tuple) -> tuple:
    """Leaf copies of the inputs; floating ones require grad."""
    return tuple(x.detach().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
                 for x in inputs)


def fwd_bwd_step(fn: Callable, inputs: tuple) -> Callable[[], None]:
    """One forward and backward of ``fn`` on leaf copies of ``inputs``."""
    leaves = _leaves(inputs)
    with torch.no_grad():
        grad = torch.ones_like(fn(*leaves))

    def step():
        for x in leaves:
            if isinstance(x, torch.Tensor):
                x.grad = None
        fn(*leaves).backward(grad)

    return step


def saved_tensor_mib(fn: Callable, inputs: tuple) -> float:
    """MiB of tensors autograd keeps alive between forward and backward (saved for backward),
    counted with saved_tensors_hooks: the activation memory a recomputing op saves."""
    total = [0]
    seen = set()

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        if key not in seen:
            seen.add(key)
            total[0] += t.numel() * t.element_size()
        return t

    leaves = _leaves(inputs)
    input_ptrs = {x.untyped_storage().data_ptr() for x in leaves if isinstance(x, torch.Tensor)}
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: pack(t) if t.untyped_storage().data_ptr() not in input_ptrs else t, lambda t: t):
        fn(*leaves)
    return total[0] / 2**20
