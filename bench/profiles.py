"""Profiles: how much each suite runs. ``smoke`` for CI, ``standard`` by default, ``full``
for nightly GPU runs. The budgets are in DESIGN.md ("Profiles")."""
from __future__ import annotations

import dataclasses

from bench.timing import Budget


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    budget: Budget                     # rounds for operator / forward-pass timing
    device_batch_sizes: tuple[int, ...]
    text_batch_sizes: tuple[int, ...]
    seq_len: int
    cpu_fp16: bool                     # CPU fp16 is slow and rarely used: full only
    compile_models: tuple[str, ...]    # models that get torch.compile rows
    hypothesis_examples: int
    ddp_world_sizes: tuple[int, ...]
    ddp_steps: int
    trainer_steps: int
    trainer_variants: int              # Trainer variants beyond the base run


PROFILES = {
    "smoke": Profile("smoke", Budget(warmup_rounds=1, rounds=5), (64,), (4,), 32, False, ("mlp",), 5,
                     (1, 2), 6, 16, 0),
    "standard": Profile("standard", Budget(warmup_rounds=3, rounds=20), (64, 256), (8,), 128, False,
                        ("mlp", "tiny_bert"), 20, (1, 2), 12, 40, 2),
    "full": Profile("full", Budget(warmup_rounds=5, rounds=50), (64, 256, 1024), (8, 32), 128, True,
                    ("mlp", "cnn", "tiny_bert", "custom_ops_mlp", "minilm"), 50, (1, 2, 4, 8), 30, 120, 99),
}
