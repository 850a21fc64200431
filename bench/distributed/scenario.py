"""DDP rows: launch the worker for one configuration, with the single-process and 1-rank
DDP baselines each run once per session (kept by the ``Session``), and derive scaling
efficiency from them."""
from __future__ import annotations

import dataclasses
import os
import socket
import sys
from pathlib import Path

from bench.core.launch import LaunchResult, in_temp_dir, launch, torchrun_command
from bench.core.numerics import DDP_GRAD_TOL, DDP_PARAM_TOL
from bench.core.profiles import PROFILES, Profile

WORKER = "bench.distributed.worker"
BATCH_PER_RANK = {"mlp": 64, "tiny_bert": 8}
GRAD_TOL, PARAM_TOL = DDP_GRAD_TOL, DDP_PARAM_TOL  # see bench.core.numerics


def worker_args(model: str, out: Path, device: str, profile: Profile, extra: list[str] | None = None) -> list[str]:
    return ["--model", model, "--profile", profile.name, "--steps", str(profile.ddp_steps),
            "--batch-per-rank", str(BATCH_PER_RANK.get(model, 16)), "--out", str(out), "--device", device,
            *(extra or [])]


@in_temp_dir
def launch_run(model: str, world_size: int, device: str = "cpu", extra: list[str] | None = None,
               timeout_s: float = 180.0, workdir: Path | None = None,
               profile: Profile = PROFILES["standard"]) -> LaunchResult:
    """world_size 0 = the single process without DDP (plain ``python -m``); ``profile`` sets
    the number of steps."""
    out = workdir / f"{model}-ws{world_size}-{device}.json"
    args = worker_args(model, out, device, profile, extra)
    if world_size == 0:
        cmd = [sys.executable, "-m", WORKER, "--no-ddp", "--threads", str(os.cpu_count() or 1), *args]
    else:
        cmd = torchrun_command(WORKER, args, world_size)
    return launch([cmd], out, timeout_s)


def remember(session, model: str, device: str, world_size: int, result: LaunchResult) -> None:
    """A row's own run doubles as the baseline of the others (one measurement, not two)."""
    if result.ok:
        session.offer(("ddp_baseline", model, device, world_size), result)


def baseline(session, model: str, device: str, world_size: int) -> LaunchResult:
    """The session's run of ``model`` at ``world_size`` (0: no DDP) on ``device``, run once."""
    return session.shared(("ddp_baseline", model, device, world_size),
                          lambda: launch_run(model, world_size, device, profile=session.profile))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@in_temp_dir
def run_two_nodes_on_localhost(model: str, timeout_s: float = 180.0, workdir: Path | None = None,
                               profile: Profile = PROFILES["standard"]) -> LaunchResult:
    """Two torchrun "nodes" (one rank each) on this host, joined by c10d rendezvous."""
    out = workdir / f"{model}-2nodes.json"
    args = worker_args(model, out, "cpu", profile, ["--threads", "1"])
    endpoint = f"127.0.0.1:{free_port()}"
    cmds = [torchrun_command(WORKER, args, 1, nnodes=2, rdzv_endpoint=endpoint) for _ in range(2)]
    return launch(cmds, out, timeout_s)


def efficiency_vs_baselines(session, model: str, device: str, world_size: int, launched: LaunchResult) -> dict:
    """Scaling efficiency of a DDP run against the no-DDP process and 1-rank DDP, both on
    the run's own device (an nccl run is never compared with a CPU process).

    The no-DDP baseline is run again right after the DDP run, not taken from earlier in the
    session: a baseline timed minutes apart, while the machine was busy, once gave an
    "efficiency" of 5.2 (a ratio of two moments, not of two setups)."""
    single = launch_run(model, 0, device, profile=session.profile)
    ddp1 = launched if world_size == 1 else baseline(session, model, device, 1)
    out = efficiency(launched.result, single.result if single.ok else None, ddp1.result if ddp1.ok else None)
    if single.ok:
        out["baseline_step_ms_p50"] = single.result.get("step_ms_p50")
    return out


def efficiency(result: dict, single: dict | None, ddp1: dict | None) -> dict:
    """Weak-scaling efficiency: global samples/s over world_size x the baseline's."""
    n = result["world_size"]
    out = {}
    if single:
        out["scaling_efficiency"] = result["samples_per_s"] / (n * single["samples_per_s"])
    if ddp1:
        out["scaling_efficiency_vs_ddp1"] = result["samples_per_s"] / (n * ddp1["samples_per_s"])
    return out


BUCKET_SWEEP_MB = (1, 100)  # besides DDP's default 25


def cases(session) -> list:
    """The DDP suite's cases for ``session``'s profile, each skipped with its reason where this machine
    cannot run it (no such backend in this torch build, too few cores or GPUs)."""
    import pytest

    from bench.core.hardware import probe
    from bench.core.profiles import case, lacks

    profile, out = session.profile, []
    caps = probe()
    models = ("mlp",) if profile.name == "smoke" else ("mlp", "tiny_bert")
    for model in models:
        out.append(case("ddp", model=model, backend="none", world_size=1, device="cpu"))
        for ws in profile.ddp_world_sizes:
            marks = [pytest.mark.distributed]
            if "gloo" not in caps.backends:
                marks.append(lacks("this torch build has no gloo backend"))
            elif ws > (os.cpu_count() or 1):
                marks.append(lacks(f"gloo at world size {ws} on {os.cpu_count()} cores would "
                                                     "oversubscribe them (less than one core per rank)"))
            out.append(case("ddp", marks=marks, model=model, backend="gloo", world_size=ws, device="cpu"))
        if profile.name == "full":  # DDP's gradient bucket size, swept at the largest CPU world size
            for cap in BUCKET_SWEEP_MB:
                out.append(case("ddp", marks=[pytest.mark.distributed], model=model, backend="gloo",
                                world_size=max(profile.ddp_world_sizes[:2]), device="cpu", bucket_cap_mb=cap))
        for ws in profile.ddp_world_sizes:
            marks = [pytest.mark.distributed]
            if caps.cuda and "nccl" not in caps.backends:
                marks.append(lacks("this torch build has no nccl backend"))
            elif caps.cuda and ws > caps.cuda_device_count:
                marks.append(lacks(f"nccl at world size {ws} needs {ws} GPUs, "
                                                     f"found {caps.cuda_device_count}"))
            out.append(case("ddp", marks=marks, model=model, backend="nccl", world_size=ws, device="cuda:0"))
    return out


# On the reference 2-core CPU (docs/methods.md, "The run's time plan"): a torchrun launch of a world (its ranks
# importing torch and transformers) in seconds, and one training step in ms per model.
LAUNCH_S = {1: 11.0, 2: 11.0}
_STEP_MS = {"mlp": 5.0, "tiny_bert": 25.0}


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan): a fixed number of steps, under
    torchrun (then the no-DDP baseline again, in process) or in process."""
    from bench.core.plan import Cost

    steps = profile.ddp_steps * _STEP_MS.get(case["model"], 25.0) / 1e3
    if case["backend"] == "none":
        return Cost(fixed_s=5.0 + 2 * steps)
    launch = LAUNCH_S.get(case["world_size"], 6.0 * case["world_size"])
    return Cost(fixed_s=launch + 4 * steps, essential=case["model"] == "mlp" and case["world_size"] == 2)


def run_case(case: dict, benchmark, row, session) -> None:
    """Launch one configuration (``backend`` none: the single process), record its steady
    steps, then check DDP's gradients against one process and the parameters across ranks."""
    from bench.core.hardware import probe
    from bench.core.timing import record_step_samples

    c = case
    device = "cpu" if c["backend"] in ("none", "gloo") else "cuda"
    ws = 0 if c["backend"] == "none" else c["world_size"]
    extra = ["--bucket-cap-mb", str(c["bucket_cap_mb"])] if c.get("bucket_cap_mb") else None
    args, kwargs = (c["model"], ws, device, extra), {"profile": session.profile}
    launched = benchmark.pedantic(launch_run, args=args, kwargs=kwargs, rounds=1, iterations=1) \
        if benchmark is not None else launch_run(*args, **kwargs)
    if not launched.ok:
        row.check(False, launched.reason, status="error")
    # the benchmark's samples are the steady-state steps (slowest rank per step), not the launch
    if benchmark is not None:
        record_step_samples(benchmark, [ms / 1e3 for ms in launched.result["step_ms_slowest_rank"]])
    if not c.get("bucket_cap_mb"):
        remember(session, c["model"], device, ws, launched)
    result = launched.result
    row.update({k: result.get(k) for k in (
        "threads_per_rank", "step_ms_p50", "step_ms_p90", "samples_per_s", "comm_share", "grad_max_abs_diff",
        "param_max_abs_diff_across_ranks", "bucket_cap_mb", "batch_per_rank", "global_batch", "steps", "scaling",
        "checks_note")})
    row["launch_wall_s"] = launched.wall_s
    if c["backend"] == "none":
        row["scaling_efficiency"] = 1.0
        return  # the reference itself: nothing to compare (checks_note says so)
    row.update(efficiency_vs_baselines(session, c["model"], device, ws, launched))
    if device == "cuda" and probe().cuda_device_count == 1:
        row["note"] = "one GPU on this machine: nccl ran at world size 1 only"
    row.check(result["grad_max_abs_diff"] <= GRAD_TOL,
              f"DDP gradients differ from single-process ones by {result['grad_max_abs_diff']:.3g} (> {GRAD_TOL:g})")
    tol = PARAM_TOL[c["backend"]]
    row["param_tol"] = tol
    row.check(result["param_max_abs_diff_across_ranks"] <= tol,
              f"parameters differ across ranks by {result['param_max_abs_diff_across_ranks']:.3g} "
              f"(> {tol:g} for {c['backend']})")


@dataclasses.dataclass(frozen=True)
class Config:
    """One DDP case: ``backend`` "none" is the single process (world size 1)."""

    model: str = "mlp"
    backend: str = "gloo"
    world_size: int = 2
    device: str = "cpu"
    bucket_cap_mb: int | None = None

    def __post_init__(self):
        from bench.core.face import one_of

        one_of("model", self.model, tuple(BATCH_PER_RANK))
        one_of("backend", self.backend, ("none", "gloo", "nccl"))
        if self.world_size < 1 or self.backend == "none" and self.world_size != 1:
            raise ValueError(f"world_size={self.world_size} does not fit backend={self.backend!r} "
                             "(none: 1; gloo / nccl: 1 or more)")


def run(config: Config, session=None) -> dict:
    """The case's ddp.csv row, without pytest."""
    from bench.core.face import run_as_row

    return run_as_row("ddp", dataclasses.asdict(config), run_case, session)
