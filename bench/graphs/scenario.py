"""Graph-mode rows: parity first (once per model and device in a session), then timing of
modes whose parity is ``ok``, against eager on the same inputs."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from bench.core.callgrind import record_instructions
from bench.core.face import one_of
from bench.core.hardware import peak_memory_columns, reset_peak_memory, synchronize
from bench.core.profiles import PROFILES, Profile
from bench.graphs.inputs import batch_size, model_and_inputs
from bench.graphs.minify import minimal_repro
from bench.graphs.parity import MODES, ModeResult, check_parity, params_of
from bench.registry import ModelSpec, get_model

PHASES = ("inference", "train")


def parity(model_name: str, device: str, modes: tuple[str, ...], backend: str = "inductor",
           profile: Profile = PROFILES["standard"]):
    """(model, example inputs, target, {mode: ModeResult}) for one model on one device, at
    ``profile``'s batch size and sequence length."""
    model, example, target, probes = model_and_inputs(model_name, device, profile)
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


def modes_for(model: str, profile) -> tuple[str, ...]:
    return tuple(m for m in MODES if m != "compile" or model in profile.compile_models)


def cases(session) -> list:
    """Every model x device x mode x phase of the graph-modes suite for ``session``."""
    import pytest

    from bench.core.profiles import case
    from bench.registry import models

    profile, out = session.profile, []
    for name, spec in models("graph_modes").items():
        for device in session.devices:
            if spec.gpu_only and device == "cpu":
                continue
            for mode in MODES:
                marks = []
                if mode == "compile":
                    marks.append(pytest.mark.compile)
                    if name not in profile.compile_models:
                        marks.append(pytest.mark.skip(
                            reason=f"torch.compile rows for {name} run in the full profile only "
                                   f"(10-20 s per graph on CPU; this is {profile.name})"))
                for phase in PHASES:
                    out.append(case("graph_modes", marks=marks, model=name, mode=mode, device=device, dtype="fp32",
                                    phase=phase))
    return out


def _minimal_repro(c: dict, session) -> dict:
    """torch's minifier on a compile mismatch, once per model and device (both phases)."""
    return session.shared(("minimal_repro", c["model"], c["device"]),
                          lambda: minimal_repro(c["model"], c["device"], session))


# Seconds to build one mode's graph (and save / load it back) for a small model on the reference
# 2-core CPU (docs/methods.md, "The run's time plan"); the model's parity is built once for both phases.
_BUILD_S = {"eager": 0.1, "script": 0.5, "trace": 0.3, "export": 1.0, "compile": 8.0}


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan): the model's parity (every mode
    built and checked once, by its first row: eager, inference), then the mode timed interleaved
    with eager (a compiled train step compiles its backward on first use)."""
    from bench.core.plan import budget_timed

    spec = get_model(case["model"])
    call_s = 2 * spec.step_ms[1 if case["phase"] == "train" else 0] * batch_size(spec, profile) / 1e3
    # a larger model takes longer to script, trace, export and compile, about as it takes to build
    parity = spec.build_s + sum(_BUILD_S[m] for m in modes_for(case["model"], profile)) * (1 + spec.build_s / 2)
    fixed = _BUILD_S["compile"] / 2 if case["mode"] == "compile" and case["phase"] == "train" else 0.1
    return budget_timed(profile.budget, call_s, fixed_s=fixed, calls_before=4, essential=case["model"] == "mlp",
                        shared=f"graph parity {case['model']} {case['device']}", shared_s=parity)


def run_case(case: dict, benchmark, row, session) -> None:
    """Parity first (a mode that does not match eager is never timed), then the mode timed
    interleaved with eager on the same inputs; every column into ``row``."""
    c, bench_row = case, row
    from bench.core.numerics import tf32_state
    from bench.core.timing import budget_for, run_benchmark, run_benchmark_against, summarize_ms

    spec = get_model(c["model"])
    missing = spec.unavailable() if spec.unavailable else None
    if missing:
        bench_row.end("skipped", missing)
    if c["device"].startswith("cuda"):
        bench_row.update(tf32_state())  # parity tolerances for fp32 widen when TF32 is on
    profile, modes = session.profile, modes_for(c["model"], session.profile)
    modes += (c["mode"],) if c["mode"] not in modes else ()  # a case that asks for a mode gets it
    model, example, target, results = session.shared(
        ("graph_parity", c["model"], c["device"], modes),
        lambda: parity(c["model"], c["device"], modes, session.settings.compile_backend, profile),
        slot="graph_parity")
    result = results[c["mode"]]
    bench_row.update(max_abs_err=result.max_abs_err, build_s=result.build_s, graph_breaks=result.graph_breaks,
                     compile_cache=result.compile_cache, recompiles=result.recompiles,
                     warnings="; ".join(result.warnings)[:500] or None, batch_size=batch_size(spec, profile))
    expected = spec.expectation(c["mode"])
    if expected is not None:  # judged by the plugin, as a known-failure manifest entry is
        bench_row.expect(expected)
    if c["mode"] == "compile":
        bench_row["compile_backend"] = session.settings.compile_backend
    if c["mode"] == "compile" and result.status == "mismatch" and expected is None:
        bench_row.update(_minimal_repro(c, session))
    if result.status != "ok":
        reason = result.detail or result.status
        if bench_row.get("minimal_repro"):
            reason += f" (minimal repro: {bench_row['minimal_repro']})"
        if result.status == "unsupported":
            bench_row.end(result.status, reason)
        bench_row.check(False, reason, status=result.status)
    fn = step_fn(spec, result, model, example, target, c["phase"])
    bench_row.update(peak_mem(fn, c["device"]))
    budget = budget_for(profile.budget, c["device"], c["dtype"], bench_row)
    if c["mode"] == "eager":
        samples = run_benchmark(benchmark, fn, c["device"], budget, record=bench_row)
        bench_row.update(summarize_ms(samples))
        bench_row["speedup_vs_eager"] = 1.0 if samples else None
    else:
        eager_fn = step_fn(spec, results["eager"], model, example, target, c["phase"])
        samples, eager = run_benchmark_against(benchmark, fn, eager_fn, c["device"], budget, record=bench_row)
        if samples:
            bench_row.update(summarize_ms(samples))
            bench_row["eager_median_ms"] = summarize_ms(eager)["median_ms"]
            bench_row["speedup_vs_eager"] = bench_row["eager_median_ms"] / bench_row["median_ms"]
    record_instructions(bench_row, session, "bench.graphs.scenario:instruction_callables",
                        {k: c[k] for k in ("model", "mode", "phase")} | {"profile": profile.name},
                        (bench_row.get("median_ms") or 0) / 1e3,
                        not_counted="torch.compile graphs are not rebuilt under callgrind (Dynamo and Inductor "
                                    "there cost minutes a graph)" if c["mode"] == "compile" else None)


def instruction_callables(case: dict) -> dict:
    """The mode's step on the CPU, for ``bench.core.callgrind`` (built in the valgrind'd child)."""
    from bench.graphs.builders import build
    from bench.registry import load_plugins

    load_plugins(case.get("plugins"))
    spec = get_model(case["model"])
    model, example, target, _ = model_and_inputs(case["model"], "cpu", PROFILES[case["profile"]])
    model.eval()
    runner, _ = build(case["mode"], model, example)
    return {"instructions": step_fn(spec, ModeResult(case["mode"], "ok", runner=runner), model, example, target,
                                    case["phase"])}


@dataclasses.dataclass(frozen=True)
class Config:
    """One graph-modes case: a registered model in one mode, device and phase."""

    model: str = "mlp"
    mode: str = "eager"
    device: str = "cpu"
    phase: str = "inference"
    dtype: str = "fp32"

    def __post_init__(self):
        get_model(self.model)  # KeyError naming the registered models
        one_of("mode", self.mode, MODES)
        one_of("phase", self.phase, PHASES)
        one_of("dtype", self.dtype, ("fp32",))


def run(config: Config, session=None) -> dict:
    """The case's graph_modes.csv row (parity, then timing), without pytest."""
    from bench.core.face import run_as_row

    return run_as_row("graph_modes", dataclasses.asdict(config), run_case, session)
