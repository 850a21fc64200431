"""An MLP built from the suite's own custom ops (AddBias, RMSNorm, GELU, SwiGLU), so graph
modes and devices exercise custom autograd Functions inside a real model."""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.models.mlp import make_batch
from bench.models.op_library import AddBias, GELUTanh, RMSNorm, SwiGLU
from bench.registry import ModelSpec, register_model


class CustomOpsMLP(nn.Module):
    def __init__(self, d_in: int = 784, d: int = 128, hidden: int = 256, classes: int = 10):
        super().__init__()
        self.proj = nn.Parameter(torch.randn(d_in, d) * d_in ** -0.5)
        self.bias = nn.Parameter(torch.zeros(d))
        self.norm = nn.Parameter(torch.ones(d))
        self.w_gate = nn.Parameter(torch.randn(d, hidden) * d ** -0.5)
        self.w_up = nn.Parameter(torch.randn(d, hidden) * d ** -0.5)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = GELUTanh.apply(AddBias.apply(x @ self.proj, self.bias))
        h = RMSNorm.apply(h, self.norm, 1e-6)
        return self.out(SwiGLU.apply(h, self.w_gate, self.w_up))


register_model(ModelSpec(name="custom_ops_mlp", build=CustomOpsMLP, make_batch=make_batch, kind="vision",
                         step_ms=(0.005, 0.03), description="MLP of the suite's custom autograd ops"))
