"""A small CNN on 28x28 digits (two conv blocks, one linear head)."""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.models.data import digits_28x28
from bench.registry import ModelSpec, register_model


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 7 * 7, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def make_batch(batch_size: int, device: str):
    train, _ = digits_28x28()
    idx = torch.arange(batch_size) % len(train.y)
    return (train.x[idx].view(-1, 1, 28, 28).to(device),), train.y[idx].to(device)


register_model(ModelSpec(name="cnn", build=SmallCNN, make_batch=make_batch, kind="vision", step_ms=(0.055, 0.16),
                         description="2-block CNN on 28x28 digits"))
