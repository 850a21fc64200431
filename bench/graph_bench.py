"""Graph-mode rows: parity first (cached per model and device), then timing of modes whose
parity is ``ok``, against eager on the same inputs."""
from __future__ import annotations

import functools
from typing import Callable

import torch

from bench.devices import peak_memory_columns, reset_peak_memory, synchronize
from bench.graphs import ModeResult, check_parity, params_of
from bench.registry import ModelSpec, get_model
from bench.settings import current


PHASES = ("inference", "train")


def batch_size(spec: ModelSpec) -> int:
    profile = current().profile
    return profile.text_batch_sizes[0] if spec.kind == "text" else profile.device_batch_sizes[0]


@functools.lru_cache(maxsize=8)
def parity(model_name: str, device: str, modes: tuple[str, ...], backend: str = "inductor"):
    """(model, example inputs, target, {mode: ModeResult}) for one model on one device."""
    spec = get_model(model_name)
    torch.manual_seed(0)
    model = spec.build().to(device)
    example, target = spec.make_batch(batch_size(spec), device)
    probes = [spec.probe_batch(device)] if spec.probe_batch else [spec.make_batch(batch_size(spec) // 2 + 1,
                                                                                  device)[0]]
    results = check_parity(model, example, probes, modes=modes, backend=backend)
    return model, example, target, {r.mode: r for r in results}


def step_fn(spec: ModelSpec, result: ModeResult, model, example, target, phase: str) -> Callable[[], object]:
    runner = result.runner
    if phase == "inference":
        def infer():
            with torch.no_grad():
                return runner(*example)
        return infer
    # The model stays in eval mode (dropout off): every graph was built in eval mode, and a
    # train step that differs only by mode then does the same work in every mode.
    params = params_of(runner, model)
    opt = torch.optim.SGD(params, lr=1e-4)

    def train():
        opt.zero_grad(set_to_none=True)
        loss = spec.compute_loss(runner(*example), target)
        loss.backward()
        opt.step()
        return loss

    return train


def peak_mem(fn: Callable[[], object], device: str) -> dict[str, float | None]:
    """Peak memory of one call of ``fn``, each figure named for what it measures."""
    reset_peak_memory(device)
    fn()
    synchronize(device)
    return peak_memory_columns(device)
