"""Does a custom op survive torch.compile (fullgraph) and torch.export unchanged?"""
from __future__ import annotations

import torch

from bench.ops.variants import tensors_of
from bench.registry import OpSpec


class OpModule(torch.nn.Module):
    """The op as a module over its tensor arguments (non-tensor ones fixed), for export."""

    def __init__(self, fn, inputs: tuple):
        super().__init__()
        self.fn = fn
        self.template = tuple(None if isinstance(x, torch.Tensor) else x for x in inputs)

    def forward(self, *tensors):
        it = iter(tensors)
        return self.fn(*(next(it) if t is None else t for t in self.template))


def _outputs_and_grads(fn, tensors):
    leaves = [t.detach().requires_grad_(t.is_floating_point()) for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out.sum(), [x for x in leaves if x.requires_grad], allow_unused=True)
    return out.detach(), [g for g in grads if g is not None]


def _diff(a, b) -> float:
    return max((float((x - y).abs().max()) for x, y in zip(a, b) if x.numel()), default=0.0)


def compile_and_export_parity(spec: OpSpec, device: str, backend: str = "inductor") -> dict:
    inputs = spec.make_inputs(spec.check_params, device, torch.float32)
    module = OpModule(spec.fn, inputs)
    tensors = tuple(x for x in inputs if isinstance(x, torch.Tensor))
    eager_out, eager_grads = _outputs_and_grads(module, tensors)
    torch._dynamo.reset()
    compiled = torch.compile(module, backend=backend, fullgraph=True)
    c_out, c_grads = _outputs_and_grads(compiled, tensors)
    exported = torch.export.export(module, tuple(t.detach() for t in tensors))
    e_out = tensors_of(exported.module()(*(t.detach() for t in tensors)))
    return {
        "backend": backend,
        "compile_max_abs_err": max(_diff([eager_out], [c_out]), _diff(eager_grads, c_grads)),
        "export_max_abs_err": _diff([eager_out], e_out),
    }
