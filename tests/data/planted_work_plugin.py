"""A user op that can be told to do a little more work: the planted change the instruction
channel must see. ``planted_gelu`` is GELU (tanh approximation) through a custom
autograd.Function; with ``BENCH_PLANTED_EXTRA=N`` its forward also takes the tanh of N
extra elements (the result is discarded: the output and gradients stay exact), so the
amount of added work is set, not guessed. ``planted_gelu_more`` always does 4096 extra."""
import math
import os

import torch
import torch.nn.functional as F
from torch.autograd import Function

from bench.registry import OpSpec, register_op

EXTRA = int(os.environ.get("BENCH_PLANTED_EXTRA", "0"))
K = math.sqrt(2 / math.pi)


def _gelu_grad(x):
    t = torch.tanh(K * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * 0.044715 * x * x)


def _planted(extra: int):
    class PlantedGELU(Function):
        @staticmethod
        def forward(x):
            if extra:
                torch.tanh(torch.ones(extra, dtype=x.dtype))
            return F.gelu(x, approximate="tanh")

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * _gelu_grad(x)  # differentiable: second order holds

    return PlantedGELU


def _inputs(shape, device, dtype):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype),)


register_op(OpSpec(name="planted_gelu", fn=_planted(EXTRA).apply, make_inputs=_inputs, check_params=(3, 5),
                   bench_params=(64, 256), reference=lambda x: F.gelu(x, approximate="tanh"), forward_ad=False,
                   description="GELU that does BENCH_PLANTED_EXTRA elements of extra tanh work"))
register_op(OpSpec(name="planted_gelu_more", fn=_planted(4096).apply, make_inputs=_inputs, check_params=(3, 5),
                   bench_params=(64, 256), reference=lambda x: F.gelu(x, approximate="tanh"), forward_ad=False,
                   description="planted_gelu with 4096 elements of extra tanh work"))
