"""Example user plugin: run your own op through the whole suite without editing the project.

    pytest suites/test_autograd_ops.py --bench-plugin examples.my_op_plugin -k softclip

Registers ``softclip`` (a smooth clamp, tanh-based) with a hand-written backward and its
native composite, so every check, the hypothesis shapes and the fwd+bwd benchmark apply.
"""
import torch
from hypothesis import strategies as st

from bench.registry import OpSpec, register_op


class SoftClip(torch.autograd.Function):
    """y = limit * tanh(x / limit)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, limit):
        return limit * torch.tanh(x / limit)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.limit = inputs[1]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        t = torch.tanh(x / ctx.limit)
        return grad * (1 - t * t), None


def make_inputs(shape, device, dtype):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype) * 3, 2.0


register_op(OpSpec(
    name="softclip",
    fn=SoftClip.apply,
    make_inputs=make_inputs,
    reference=lambda x, limit: limit * torch.tanh(x / limit),
    check_params=(4, 5),
    bench_params=(2048, 1024),
    params_strategy=lambda: st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    edge_params=((0, 5), (1,)),
    forward_ad=False,  # no jvp defined (and a custom jvp would stop torch.compile)
    description="example user op: smooth clamp",
))
