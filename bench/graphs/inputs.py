"""A graph-modes case's model and inputs, seeded: what parity checks, what the scenario
times and what the minifier's child process compiles again (one definition for both)."""
from __future__ import annotations

import torch

from bench.core.profiles import Profile
from bench.registry import ModelSpec, get_model


def batch_size(spec: ModelSpec, profile: Profile) -> int:
    return profile.text_batch_sizes[0] if spec.kind == "text" else profile.device_batch_sizes[0]


def model_and_inputs(model_name: str, device: str, profile: Profile):
    """(model, example inputs, target, probe inputs) of a graph-modes case, seeded: what
    parity checks and what the minifier's child compiles again."""
    spec = get_model(model_name)
    torch.manual_seed(0)
    model = spec.build().to(device)
    bs = batch_size(spec, profile)
    example, target = spec.batch(bs, device, profile.seq_len)
    probe = spec.probe(device, profile.seq_len)
    probes = [probe] if probe is not None else [spec.batch(bs // 2 + 1, device, profile.seq_len)[0]]
    return model, example, target, probes
