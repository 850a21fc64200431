"""Data sets, all available offline: sklearn's bundled digits, a generated sentiment set,
and a pass-through to ``datasets`` for names and local files (see bench.hf_data)."""
from __future__ import annotations

import dataclasses
import functools

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor


@functools.lru_cache(maxsize=1)
def digits_28x28(test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """sklearn's 8x8 digits (1,797 images), upsampled to 28x28 and flattened to 784 features
    like MNIST, standardised with the training split's statistics; a fixed shuffled split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).flatten(1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    n_test = int(len(labels) * test_fraction)
    test_idx, train_idx = order[:n_test], order[n_test:]
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    return Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx])
