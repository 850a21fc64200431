"""A model whose forward calls torch.relu, registered for the minifier test: Dynamo's
relu_accuracy_error_TESTING_ONLY backend turns that relu into x + 1 (a planted compile bug)."""
import torch
from torch import nn

from bench.registry import ModelSpec, register_model


class ReluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        return torch.tanh(self.b(torch.relu(self.a(x)) * 2 + 1))


def batch(batch_size, device):
    return (torch.randn(batch_size, 8, device=device),), torch.zeros(batch_size, dtype=torch.long, device=device)


register_model(ModelSpec(name="relu_net", build=ReluNet, make_batch=batch, suites=()))
