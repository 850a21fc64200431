"""The seed chapter's MLP: 784 -> 256 -> ReLU -> 10, trained with SGD (lr 0.01) and
cross-entropy on 28x28 digits."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.models.data import digits_28x28
from bench.registry import ModelSpec, register_model


class SeedMLP(nn.Module):
    def __init__(self, in_features: int = 784, hidden: int = 256, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def make_batch(batch_size: int, device: str, seed: int = 0):
    train, _ = digits_28x28()
    idx = torch.arange(batch_size) % len(train.y)
    return (train.x[idx].to(device),), train.y[idx].to(device)


def train_digits(model: nn.Module, device: str = "cpu", epochs: int = 10, batch_size: int = 32,
                 lr: float = 0.01, momentum: float = 0.0, seed: int = 0) -> dict:
    """Train on digits; returns losses per epoch and test accuracy (a correctness check)."""
    train, test = digits_28x28()
    torch.manual_seed(seed)
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    x, y = train.x.to(device), train.y.to(device)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(y), device=device)
        total = 0.0
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(y))
    model.eval()
    with torch.no_grad():
        acc = (model(test.x.to(device)).argmax(1) == test.y.to(device)).float().mean().item()
    model.train()
    return {"losses": losses, "test_accuracy": acc}


register_model(ModelSpec(
    name="mlp", build=SeedMLP, make_batch=make_batch, kind="vision", step_ms=(0.0025, 0.01),
    description="seed chapter MLP 784-256-10 on upsampled sklearn digits",
))
