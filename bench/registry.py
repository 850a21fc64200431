"""One registry for models and ops, built-ins and user plugins alike.

A model is a small spec (TorchBench's "tiny folder behind one small interface"): how to
build it, how to make a batch of a given size on a device, and what kind of input it takes.
User plugins (``--bench-plugin MODULE``) call :func:`register_model` / ``register_op``.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import torch


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], torch.nn.Module]
    # make_batch(batch_size, device) -> (inputs tuple, targets); inputs are positional args
    make_batch: Callable[[int, str], tuple[tuple[Any, ...], torch.Tensor]]
    kind: str = "vision"            # "vision" (samples/s) or "text" (samples/s and tokens/s)
    description: str = ""
    loss: Callable[[Any, torch.Tensor], torch.Tensor] | None = None  # default: cross-entropy
    gpu_only: bool = False          # too large for the CPU budget (e.g. BERT-base)
    probe_batch: Callable[[str], tuple[Any, ...]] | None = None  # extra inputs for graph parity
    unavailable: Callable[[], str | None] | None = None  # why it cannot be built here, if so

    def compute_loss(self, out: Any, target: torch.Tensor) -> torch.Tensor:
        if self.loss is not None:
            return self.loss(out, target)
        logits = out.logits if hasattr(out, "logits") else out
        return torch.nn.functional.cross_entropy(logits.float(), target)


_MODELS: dict[str, ModelSpec] = {}
_BUILTIN_MODEL_MODULES = ("bench.models.mlp",)


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _MODELS and _MODELS[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is already registered")
    _MODELS[spec.name] = spec
    return spec


def _load_builtins() -> None:
    for mod in _BUILTIN_MODEL_MODULES:
        importlib.import_module(mod)


def models() -> dict[str, ModelSpec]:
    _load_builtins()
    return dict(_MODELS)


def get_model(name: str) -> ModelSpec:
    all_models = models()
    if name not in all_models:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(all_models))}")
    return all_models[name]
