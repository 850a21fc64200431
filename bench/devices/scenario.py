"""Device throughput cases: one model x device x precision x phase x batch size.

Correctness first: each case checks its output against an fp64 CPU reference (inference)
or that three train steps give finite losses, before anything is timed.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from bench.core import hardware as dev
from bench.core import numerics
from bench.core.callgrind import record_instructions
from bench.core.flops import count_flops_and_bytes, vendor_peak_tflops
from bench.core.hardware import DTYPES, PRECISIONS
from bench.core.timing import Budget, budget_for, run_benchmark, summarize_ms
from bench.registry import ModelSpec

SHRINK = 4  # the run's time plan shrinks a case's batch by this factor (bench.core.plan)


@dataclasses.dataclass
class PreparedCase:
    step: Callable[[], Any]
    samples_per_step: int
    tokens_per_step: int | None
    rel_err: float | None
    check_reason: str | None  # why the correctness check failed, None when it passed


def autocast(device: str, dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[dtype])


def _outputs(out: Any) -> torch.Tensor:
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def _to(inputs: tuple, device: str | None = None, dtype: torch.dtype | None = None) -> tuple:
    """Move tensor inputs to ``device``; cast floating ones to ``dtype`` (ids stay integers)."""
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor):
            if dtype is not None and x.is_floating_point():
                x = x.to(dtype)
            x = x.to(device) if device is not None else x
        out.append(x)
    return tuple(out)


def _inference_vs_fp64(model, inputs, device: str, dtype: str) -> tuple[float, str | None]:
    """The forward's relative error against an fp64 copy of the model, and why it fails (or
    None). Leaves ``model`` in fp32 on ``device``."""
    with torch.no_grad():
        ref = _outputs(model.double()(*_to(inputs, dtype=torch.float64))).float()
    model.float().to(device)
    with torch.no_grad(), autocast(device, dtype):
        out = _outputs(model(*_to(inputs, device=device))).float().cpu()
    rel_err = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    if not torch.isfinite(out).all():
        return rel_err, "non-finite output"
    if rel_err > numerics.rel_tol_vs_fp64(dtype, device):
        return rel_err, (f"relative error {rel_err:.3g} vs fp64 reference exceeds "
                         f"{numerics.rel_tol_vs_fp64(dtype, device):g} for {dtype}"
                         + (" (TF32 on)" if dtype == "fp32" and numerics.tf32_active(device) else ""))
    return rel_err, None


def prepare(spec: ModelSpec, device: str, dtype: str, phase: str, batch_size: int,
            seq_len: int | None = None, check: bool = True) -> PreparedCase:
    """The case's step; ``check``: its output against the fp64 reference (inference) or three
    finite losses (train) first (``check=False``: the step only, for the callgrind child)."""
    torch.manual_seed(0)
    model = spec.build()
    inputs, target = spec.batch(batch_size, "cpu", seq_len)
    tokens = spec.count_tokens(inputs) if spec.count_tokens else None
    if phase == "inference":
        model.eval()
        rel_err, reason = _inference_vs_fp64(model, inputs, device, dtype) if check else (None, None)
        model = model.float().to(device)
        dev_inputs = _to(inputs, device=device)

        def step():
            with torch.no_grad(), autocast(device, dtype):
                return model(*dev_inputs)

        return PreparedCase(step, batch_size, tokens, rel_err, reason)

    model = model.to(device).train()
    dev_inputs, dev_target = _to(inputs, device=device), target.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(torch.device(device).type) if dtype == "fp16" else None

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = spec.compute_loss(model(*dev_inputs), dev_target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss

    losses = [float(step().detach()) for _ in range(3 if check else 0)]
    reason = None
    if not all(map(lambda v: v == v and abs(v) != float("inf"), losses)):
        reason = f"non-finite training loss {losses}"
    return PreparedCase(step, batch_size, tokens, None, reason)


def metrics(case: PreparedCase, device: str, dtype: str, median_ms: float, flops: int, roofs,
            bytes_moved: int | None = None) -> dict:
    """Throughput and roof figures of a timed case; ``roofs`` (a ``Session``'s) measures the
    GEMM and copy roofs once per run."""
    seconds = median_ms / 1e3
    tflops = flops / seconds / 1e12 if flops else None
    out = {
        "samples_per_s": case.samples_per_step / seconds,
        "tokens_per_s": case.tokens_per_step / seconds if case.tokens_per_step else None,
        "flops_per_step": flops,
        "tflops": tflops,
    }
    if bytes_moved:  # roofline coordinates (see count_flops_and_bytes for how bytes are estimated)
        out["bytes_per_step"] = bytes_moved
        out["arithmetic_intensity"] = flops / bytes_moved if flops else None
        out["achieved_gb_per_s"] = bytes_moved / seconds / 1e9
        out["bandwidth_gb_per_s"] = roofs.bandwidth(device)["gb_per_s"]
    peak = roofs.peak(device, dtype)
    out["peak_tflops"] = peak["tflops"]
    out["pct_of_peak"] = 100 * tflops / peak["tflops"] if tflops else None
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        vendor = vendor_peak_tflops(name, dtype)
        out["vendor_peak_tflops"] = vendor
        out["pct_of_vendor_peak"] = 100 * tflops / vendor if vendor and tflops else None
        if vendor is None:  # never a neighbour's figure (a default peak gave a peer project an MFU of 152 %)
            out["vendor_peak_note"] = (f"n/a: no {dtype} vendor peak listed for {name!r} "
                                       "(bench/core/flops.py VENDOR_PEAK_TFLOPS); pct_of_peak uses the measured roof")
    return out




def cases(session) -> list:
    """Every model x device x precision x phase x batch size of the devices suite."""
    from bench.core.profiles import case
    from bench.registry import models

    profile, out = session.profile, []
    for spec in models("devices").values():
        sizes = profile.text_batch_sizes if spec.kind == "text" else profile.device_batch_sizes
        for device in session.devices:
            if spec.gpu_only and device == "cpu":
                continue
            for dtype in PRECISIONS:
                if device == "cpu" and dtype == "fp16" and not profile.cpu_fp16:
                    continue
                for phase in ("inference", "train"):
                    out += [case("devices", model=spec.name, device=device, dtype=dtype, phase=phase, batch_size=bs)
                            for bs in sizes]
    return out


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan): build, check (an fp64 reference
    or three train steps) and FLOP count, then the rounds; a large batch can be shrunk."""
    from bench.core.plan import EMULATION_FACTOR, budget_timed, case_budget
    from bench.registry import get_model

    dtype, phase, batch = case["dtype"], case["phase"], case["batch_size"]
    emulated = case["device"] == "cpu" and dtype in machine.emulated
    spec = get_model(case["model"])
    per_sample = spec.step_ms[1 if phase == "train" else 0]
    factor = (EMULATION_FACTOR * (2 if phase == "train" else 1)) if emulated else 1.0
    call_s = per_sample * batch * factor / 1e3
    if phase == "calibration":  # the timing self-check: two interleaved clocks, then a longer confirmation
        return budget_timed(profile.budget, call_s, fixed_s=spec.build_s + 3.0 + 170 * call_s, essential=True)
    return budget_timed(case_budget(profile, machine, case["device"], dtype), call_s,
                        fixed_s=spec.build_s, calls_before=5,
                        shrink=1 / SHRINK if batch >= SHRINK else 1.0,
                        shrink_note=f"batch {batch} -> {max(1, batch // SHRINK)}",
                        why=f"{dtype} is emulated on this CPU: about {call_s:.1f} s a call" if emulated else "",
                        essential=dtype == "fp32" and batch in (profile.device_batch_sizes[0],
                                                                profile.text_batch_sizes[0]))


def run_case(case: dict, benchmark, row, session, *, budget: Budget | None = None,
             spec: ModelSpec | None = None) -> None:
    """Check, then time one case into ``row`` (``session``: its profile's sequence length and
    budget unless ``budget`` is given, its roofs; ``spec``: the registered model unless given).
    An out-of-memory case ends as ``oom`` with its memory released, so the run goes on."""
    from bench.registry import get_model

    c, spec = case, spec or get_model(case["model"])
    device, dtype = c["device"], c["dtype"]
    reason = spec.unavailable() if spec.unavailable else None
    if reason:
        row.end("skipped", reason)
    if torch.device(device).type == "cuda":
        row.update(numerics.tf32_state())  # fp32 numerics and speed depend on them
    oom = None
    batch = c["batch_size"]
    if row.get("plan") == "shrunk":  # the run's time plan: the row says what it measured
        batch = max(1, batch // SHRINK)
        row.update(batch_size=batch, planned_batch_size=c["batch_size"])
    try:
        case = prepare(spec, device, dtype, c["phase"], batch, session.profile.seq_len)
        row["rel_err_vs_fp64"] = case.rel_err
        row.check(case.check_reason is None, case.check_reason or "")
        flops, bytes_moved = count_flops_and_bytes(case.step)
        dev.reset_peak_memory(device)
        samples = run_benchmark(benchmark, case.step, device,
                                budget_for(budget or session.profile.budget, device, dtype, row), record=row)
    except Exception as exc:
        if not dev.is_oom(exc):
            raise
        oom = f"out of memory at batch size {batch}: {str(exc).splitlines()[0][:200]}"
    if oom is not None:
        # Outside the except block: the exception's traceback (and the frames holding the
        # model and its activations) is gone, so the memory can actually be freed.
        case = None
        dev.release_memory(device)
        row.end("oom", oom)
    row.update(dev.peak_memory_columns(device))
    row["flops_per_step"] = flops
    if samples:  # none under --benchmark-disable: checked, not timed
        row.update(summarize_ms(samples))
        row.update(metrics(case, device, dtype, row["median_ms"], flops, session.roofs, bytes_moved))
    row["optimizer"] = "sgd" if c["phase"] == "train" else None
    record_instructions(row, session, "bench.devices.scenario:instruction_callables",
                        {k: c[k] for k in ("model", "dtype", "phase")}
                        | {"batch_size": batch, "seq_len": session.profile.seq_len},
                        (row.get("median_ms") or 0) / 1e3)


def instruction_callables(case: dict) -> dict:
    """The case's step on the CPU, for ``bench.core.callgrind`` (built in the valgrind'd child)."""
    from bench.registry import get_model, load_plugins

    load_plugins(case.get("plugins"))
    spec = get_model(case["model"])
    return {"instructions": prepare(spec, "cpu", case["dtype"], case["phase"], case["batch_size"],
                                    case["seq_len"], check=False).step}


@dataclasses.dataclass(frozen=True)
class ThroughputConfig:
    """One device-throughput case, for use from Python without pytest."""

    model: str = "mlp"
    device: str = "cpu"
    dtype: str = "fp32"
    phase: str = "inference"
    batch_size: int = 64
    budget: Budget = Budget()

    def __post_init__(self):
        from bench.core.face import one_of
        from bench.registry import get_model

        get_model(self.model)  # KeyError naming the registered models
        one_of("dtype", self.dtype, PRECISIONS)
        one_of("phase", self.phase, ("inference", "train"))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


Config = ThroughputConfig


def run(cfg: ThroughputConfig, session=None) -> dict:
    """Check, then time one case; returns its devices.csv row (``status`` and ``reason`` say
    whether it was ok, a mismatch, out of memory or skipped). Several calls can share one
    ``bench.core.session.Session`` (its roofs are measured once)."""
    from bench.core.face import run_as_row

    keys = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "budget"}
    return run_as_row("devices", keys, run_case, session, budget=cfg.budget)
