"""Sharded-training rows: one process vs DDP vs FSDP2 (``fully_shard``), with and without
activation checkpointing, on a decoder of the generation zoo under the one torchrun launcher.
Each row is proven equal to one process on the whole batch (every step's loss, every full
parameter) before its step time, tokens/s and per-rank bytes count -> sharded.csv."""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from bench.core.face import one_of, run_as_row
from bench.core.numerics import SHARDED_TOL
from bench.distributed.launcher import LaunchResult, in_temp_dir, launch, torchrun_command

WORKER = "bench.sharded.worker"
STRATEGIES = ("single", "ddp", "fsdp2")
# (steps, global batch, sequence length) per profile; the decoder's size is the generation zoo's
SHAPES = {"smoke": (4, 4, 32), "standard": (4, 8, 64), "full": (20, 16, 256)}


@dataclasses.dataclass(frozen=True)
class Config:
    """One sharded-training case (``world_size`` 1 for ``single``)."""

    model: str = "llama"
    strategy: str = "fsdp2"
    world_size: int = 2
    checkpoint: bool = False
    device: str = "cpu"

    def __post_init__(self):
        from bench.generation.zoo import DECODERS

        one_of("model", self.model, DECODERS)
        one_of("strategy", self.strategy, STRATEGIES)
        if self.world_size < 1 or self.strategy == "single" and self.world_size != 1:
            raise ValueError(f"world_size={self.world_size} does not fit strategy={self.strategy!r} "
                             "(single: 1; ddp / fsdp2: 1 or more)")


def _size(session, device: str) -> str:
    from bench.generation.zoo import size_for

    return size_for(session.profile.gen_size, device)


@in_temp_dir
def launch_run(c: dict, session, extra: list[str] | None = None, timeout_s: float = 300.0,
               workdir: Path | None = None) -> LaunchResult:
    steps, batch, seq = SHAPES[session.profile.gen_size]
    out = workdir / "sharded.json"
    args = ["--strategy", c["strategy"], "--model", c["model"], "--size", _size(session, c["device"]),
            "--steps", str(steps), "--global-batch", str(batch), "--seq", str(seq), "--out", str(out),
            "--device", "cuda" if c["device"].startswith("cuda") else "cpu",
            *(["--checkpoint"] if c.get("checkpoint") else []), *(extra or [])]
    if c["strategy"] == "single":
        cmd = [sys.executable, "-m", WORKER, *args]
    else:
        cmd = torchrun_command(WORKER, args, c["world_size"])
    return launch([cmd], out, timeout_s)


def cases(session) -> list:
    import pytest

    from bench.core.hardware import probe
    from bench.core.profiles import case

    out, cores, gpus = [], os.cpu_count() or 1, probe().cuda_device_count
    sizes = [ws for ws in session.profile.ddp_world_sizes if ws > 1]
    for device in ("cpu",) + (("cuda:0",) if any(d.startswith("cuda") for d in session.devices) else ()):
        variants = [("single", 1, False), ("single", 1, True)]
        for ws in sizes:
            variants += [("ddp", ws, False), ("fsdp2", ws, False), ("fsdp2", ws, True)]
        if not session.profile.sharded_all:  # smoke: the one row that exercises both (the tests cover the rest)
            variants = [v for v in variants if v[0] == "fsdp2" and v[2]]
        for strategy, ws, ckpt in variants:
            marks = []
            if device == "cpu" and ws > cores:
                marks.append(pytest.mark.skip(reason=f"gloo at world size {ws} on {cores} cores would oversubscribe"))
            elif device != "cpu" and ws > gpus:
                reason = f"nccl at world size {ws} needs {ws} GPUs; this machine has {gpus}"
                marks.append(pytest.mark.skip(reason=reason))
            out.append(case("sharded", marks=marks, model="llama", strategy=strategy, world_size=ws,
                            checkpoint=ckpt, device=device))
    return out


def run_case(case: dict, benchmark, row, session, *, extra: list[str] | None = None) -> None:
    """Launch, then check the equivalence: every step's loss and every full parameter against
    one process on the whole batch (no checkpointing), naming the step and the parameter."""
    from bench.core.timing import record_step_samples

    c = case
    launched = benchmark.pedantic(launch_run, args=(c, session, extra), rounds=1, iterations=1) \
        if benchmark is not None else launch_run(c, session, extra)
    if not launched.ok:
        row.check(False, launched.reason, status="error")
    r = launched.result
    if benchmark is not None:
        record_step_samples(benchmark, [ms / 1e3 for ms in r["step_ms_slowest_rank"][1:]])
    row.update({k: r.get(k) for k in (
        "size", "steps", "global_batch", "seq", "step_ms_p50", "tokens_per_s", "loss_max_abs_diff",
        "param_max_abs_diff", "param_worst", "param_bytes_per_rank", "grad_bytes_per_rank",
        "optimizer_bytes_per_rank", "param_bytes_unsharded", "peak_rss_mib_max_rank",
        "cuda_peak_allocated_mib_max_rank", "activation_saved_bytes", "activation_saved_bytes_no_checkpoint")})
    row["launch_wall_s"] = launched.wall_s
    row["sharded_fraction"] = r["param_bytes_per_rank"] / r["param_bytes_unsharded"]
    if r.get("activation_saved_bytes_no_checkpoint"):
        row["activation_saved_fraction"] = r["activation_saved_bytes"] / r["activation_saved_bytes_no_checkpoint"]
    def beyond_tol(d) -> bool:  # None: a non-finite difference (NaN or inf, written as null)
        return d is None or d > SHARDED_TOL

    beyond = [i for i, d in enumerate(r["loss_diffs"]) if beyond_tol(d)]
    row.check(not beyond, f"loss differs from one process on the whole batch from step {beyond[0] if beyond else 0} "
                          f"on (by {r['loss_max_abs_diff']} > {SHARDED_TOL:g}); worst parameter "
                          f"{r['param_worst']} ({r['param_max_abs_diff']})")
    row.check(not r["params_missing"], f"parameters missing after training: {r['params_missing']}")
    row.check(not beyond_tol(r["param_max_abs_diff"]),
              f"parameter {r['param_worst']} differs from one process's by {r['param_max_abs_diff']} "
              f"(> {SHARDED_TOL:g}) after {r['steps']} steps")


def run(config: Config, session=None) -> dict:
    """The case's sharded.csv row, without pytest."""
    return run_as_row("sharded", dataclasses.asdict(config), run_case, session)
