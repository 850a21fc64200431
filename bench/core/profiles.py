"""Profiles (how much each suite runs: ``smoke`` for CI, ``standard`` by default, ``full``
for nightly GPUs), a run's ``Settings``, and ``case(...)``: the parametrisation that
carries a report row's identity."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest

from bench.core.hardware import default_devices
from bench.core.timing import Budget


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    budget: Budget                     # time per operator / forward-pass case (rounds sized by it)
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
    # generation: the decoder zoo's size (bench.models.decoders.SIZES), batch sizes, prompt
    # length, tokens generated per request, and whether compile / export rows run
    gen_size: str = "standard"
    gen_batch_sizes: tuple[int, ...] = (1, 4)
    gen_prompt_len: int = 64
    gen_new_tokens: int = 32
    gen_graphs: bool = True            # torch.compile and torch.export rows (10-30 s each on CPU)
    sharded_all: bool = True           # every sharded-training strategy; False: FSDP2 + checkpointing only
    # --bench-instructions: the op inputs counted under callgrind ("check": the small checking
    # shapes, where dispatch and framework overhead dominate; "bench": the timed shapes), and
    # the most a case may cost there (estimated from its wall time) before it is left out
    instr_inputs: str = "bench"
    instr_case_cap_s: float = 120.0
    # the whole run's time budget on a 2-core CPU (bench.core.plan), None: no ceiling
    run_budget_s: float | None = None


# Budgets: see docs/methods.md ("Time budgets"): smoke keeps CI lean, standard fits the main job in
# minutes on 2 cores, full resolves small changes on a dedicated nightly runner.
PROFILES = {
    "smoke": Profile(
        name="smoke",
        budget=Budget(measure_s=0.5, min_rounds=5, max_rounds=30, warmup_s=0.2, warmup_rounds=1),
        device_batch_sizes=(64,), text_batch_sizes=(4,), seq_len=32, cpu_fp16=False,
        compile_models=("mlp",), hypothesis_examples=5,
        ddp_world_sizes=(1, 2), ddp_steps=6, trainer_steps=16, trainer_variants=0,
        gen_size="smoke", gen_batch_sizes=(2,), gen_prompt_len=16, gen_new_tokens=8, gen_graphs=False,
        sharded_all=False, instr_inputs="check", instr_case_cap_s=30.0, run_budget_s=180.0),
    "standard": Profile(
        name="standard",
        budget=Budget(measure_s=1.5, min_rounds=5, max_rounds=100, warmup_s=0.5, warmup_rounds=2),
        device_batch_sizes=(64, 256), text_batch_sizes=(8,), seq_len=128, cpu_fp16=False,
        compile_models=("mlp", "tiny_bert"), hypothesis_examples=20,
        ddp_world_sizes=(1, 2), ddp_steps=12, trainer_steps=40, trainer_variants=2, run_budget_s=480.0),
    "full": Profile(
        name="full",
        budget=Budget(measure_s=8.0, min_rounds=10, max_rounds=1000, warmup_s=2.0, warmup_rounds=3),
        device_batch_sizes=(64, 256, 1024), text_batch_sizes=(8, 32), seq_len=128, cpu_fp16=True,
        compile_models=("mlp", "cnn", "tiny_bert", "custom_ops_mlp", "minilm"), hypothesis_examples=50,
        ddp_world_sizes=(1, 2, 4, 8), ddp_steps=30, trainer_steps=120, trainer_variants=99,
        gen_size="full", gen_batch_sizes=(1, 8), gen_prompt_len=512, gen_new_tokens=128),
}


def lacks(reason: str):
    """A case this machine cannot run (no GPU, too few cores or GPUs, a backend the torch build
    lacks): skipped with ``reason``, and counted in the headline apart from other skips."""
    return pytest.mark.bench_lacks(reason)


# ---- a run's settings ----

@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run was asked to do; held by its :class:`bench.core.session.Session`."""

    profile: Profile
    devices: tuple[str, ...]
    hf_model: str | None = None
    hf_dataset: str | None = None
    compile_backend: str = "inductor"  # torch.compile's backend in the graph-modes suite
    plugins: tuple[str, ...] = ()      # --bench-plugin modules / files (child processes load them too)
    instructions: bool = False         # --bench-instructions: CPU rows also counted under callgrind


def settings(profile: str = "standard", devices: list[str] | None = None, hf_model: str | None = None,
             hf_dataset: str | None = None, compile_backend: str = "inductor",
             plugins: tuple[str, ...] = (), instructions: bool = False) -> Settings:
    """Settings for ``profile`` (a name in PROFILES) on ``devices`` (default: cpu and every
    CUDA device)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if compile_backend != "inductor":
        import torch._dynamo

        known = torch._dynamo.list_backends(exclude_tags=())
        if compile_backend not in known:
            raise ValueError(f"unknown torch.compile backend {compile_backend!r}; valid: {', '.join(known)}")
    if instructions:
        from bench.core.callgrind import valgrind_missing

        if valgrind_missing():
            raise ValueError(valgrind_missing())
    return Settings(PROFILES[profile], tuple(devices or default_devices()), hf_model, hf_dataset, compile_backend,
                    tuple(plugins), instructions)


# ---- cases: pytest params that carry their report row's identity ----

def case(suite: str, *, marks: Iterable[Any] = (), id: str | None = None, **keys: Any):
    marks = list(marks) + [pytest.mark.bench_row(suite=suite, **keys)]
    if str(keys.get("device", "")).startswith("cuda"):
        marks.append(pytest.mark.cuda)
    ident = id or "-".join(_id_part(k, v) for k, v in keys.items() if v is not None)
    return pytest.param(dict(keys), id=ident, marks=marks)


def cases_from(factory, argname: str = "c"):
    """Parametrise a test's ``argname`` with ``factory(session)``: the cases of the run's
    profile and devices, made at collection from the plugin's ``Session`` (no module-level
    settings). A decorator: ``@cases_from(scenario.cases)``."""
    return pytest.mark.bench_cases.with_args(factory, argname=argname)


def _id_part(key: str, value: Any) -> str:
    if key == "batch_size":
        return f"bs{value}"
    if key == "world_size":
        return f"ws{value}"
    if key == "prompt_len":
        return f"prompt{value}"
    if key == "bucket_cap_mb":
        return f"bucket{value}mb"
    if isinstance(value, bool):
        return key if value else f"no_{key}"
    return str(value)

