"""Does a custom op survive torch.compile (fullgraph) and torch.export unchanged?"""
from __future__ import annotations

import torch

from bench.core.outputs import outputs_and_grads, worst_error
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


def compile_and_export_parity(spec: OpSpec, device: str, backend: str = "inductor") -> dict:
    inputs = spec.make_inputs(spec.check_params, device, torch.float32)
    module = OpModule(spec.fn, inputs)
    tensors = tuple(x for x in inputs if isinstance(x, torch.Tensor))
    eager_out, eager_grads = outputs_and_grads(module, [], tensors)
    torch._dynamo.reset()
    compiled = torch.compile(module, backend=backend, fullgraph=True)
    c_out, c_grads = outputs_and_grads(compiled, [], tensors)
    exported = torch.export.export(module, tuple(t.detach() for t in tensors))
    e_out = tensors_of(exported.module()(*(t.detach() for t in tensors)))
    return {
        "backend": backend,
        "compile_max_abs_err": worst_error(eager_out + eager_grads, c_out + c_grads)[0],
        "export_max_abs_err": worst_error(eager_out, [t.detach() for t in e_out])[0],
    }
