"""Data sets, all available offline: sklearn's bundled digits, a generated sentiment set,
and a pass-through to ``datasets`` for names and local files (see bench.trainer.data)."""
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


_POSITIVE = ("great", "wonderful", "excellent", "delightful", "superb", "enjoyable", "brilliant", "lovely",
             "charming", "fantastic", "moving", "fun")
_NEGATIVE = ("terrible", "awful", "boring", "dreadful", "poor", "disappointing", "dull", "horrible",
             "tedious", "bad", "weak", "annoying")
_SUBJECTS = ("the movie", "this film", "the acting", "the plot", "the soundtrack", "the ending", "the story",
             "the cast", "the script", "the direction")
_FILLERS = ("", "honestly, ", "overall ", "i thought ", "to be fair, ", "in the end ")
_TAILS = ("", " and i would say so again", " from start to finish", ", at least for me", " in every way")


def sentiment_examples(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """A deterministic, generated, labelled sentiment set (label 1 = positive). Sentences
    vary in length, so padding and non-padding tokens differ (tokens/s is honest)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.random() < 0.5
        words = _POSITIVE if label else _NEGATIVE
        text = f"{rng.choice(_FILLERS)}{rng.choice(_SUBJECTS)} was {rng.choice(words)}"
        if rng.random() < 0.5:
            text += f" and {rng.choice(words)}"
        out.append((text + rng.choice(_TAILS) + ".", int(label)))
    return out
