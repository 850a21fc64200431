"""Models that show the documented torch.jit.trace pitfalls. Graph-modes only: they exist
to prove the parity checker catches a graph that silently specialised."""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.registry import ModelSpec, register_model


class DataDependentBranch(nn.Module):
    """Control flow on a tensor's value: trace records the branch its example took."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        if x.sum() > 0:
            return torch.relu(h) * 2
        return h - 1


class ShapeArithmetic(nn.Module):
    """Python arithmetic on a shape: trace bakes the example's batch size in as a constant."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        batch = int(h.shape[0])
        return h - h.sum(0, keepdim=True) / batch  # centre over the batch


# Where each pitfall is documented: trace records one run's operations and says so in its warning
# ("Tracing ... doesn't record control flow"); export refuses data-dependent control flow
# (torch.cond is its answer).
_PITFALLS = {"trace": ("mismatch", "https://pytorch.org/docs/stable/generated/torch.jit.trace.html"),
             "export": ("unsupported", "https://pytorch.org/docs/stable/export.html")}


def _data_dependent_batch(batch_size: int, device: str):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 8, generator=gen).abs().to(device)
    return (x,), torch.zeros(batch_size, dtype=torch.long, device=device)


def _negative_probe(device: str):
    """An input whose sum is negative: the branch the (positive) example did not take."""
    gen = torch.Generator().manual_seed(1)
    return (-torch.randn(4, 8, generator=gen).abs().to(device),)


def _shape_batch(batch_size: int, device: str):
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(batch_size, 8, generator=gen).to(device),), torch.zeros(batch_size, dtype=torch.long,
                                                                             device=device)


def _shape_probe(device: str):
    gen = torch.Generator().manual_seed(2)
    return (torch.randn(7, 8, generator=gen).to(device),)


register_model(ModelSpec(name="data_dependent", build=DataDependentBranch, make_batch=_data_dependent_batch,
                         probe_batch=_negative_probe, suites=("graph_modes",), step_ms=(0.0005, 0.002),
                         expected_parity=_PITFALLS,
                         description="branch on a tensor value (trace pitfall)"))
register_model(ModelSpec(name="shape_arith", build=ShapeArithmetic, make_batch=_shape_batch,
                         probe_batch=_shape_probe, suites=("graph_modes",), step_ms=(0.0005, 0.002),
                         expected_parity=_PITFALLS,
                         description="Python arithmetic on a shape (trace pitfall)"))
