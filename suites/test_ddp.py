"""Single process vs DistributedDataParallel under torchrun -> ddp.csv."""
import os

import pytest

from bench.cases import case
from bench.devices import probe
from bench.distributed import runs
from bench.settings import current
from bench.timing import record_step_samples

PROFILE = current().profile
MODELS = ("mlp",) if PROFILE.name == "smoke" else ("mlp", "tiny_bert")
GRAD_TOL, PARAM_TOL = runs.GRAD_TOL, runs.PARAM_TOL
BUCKET_SWEEP_MB = (1, 100)  # besides DDP's default 25


def _cases():
    out = []
    caps = probe()
    for model in MODELS:
        out.append(case("ddp", model=model, backend="none", world_size=1, device="cpu"))
        for ws in PROFILE.ddp_world_sizes:
            marks = [pytest.mark.distributed]
            if ws > (os.cpu_count() or 1):
                marks.append(pytest.mark.skip(reason=f"gloo at world size {ws} on {os.cpu_count()} cores would "
                                                     "oversubscribe them (less than one core per rank)"))
            out.append(case("ddp", marks=marks, model=model, backend="gloo", world_size=ws, device="cpu"))
        if PROFILE.name == "full":  # DDP's gradient bucket size, swept at the largest CPU world size
            for cap in BUCKET_SWEEP_MB:
                out.append(case("ddp", marks=[pytest.mark.distributed], model=model, backend="gloo",
                                world_size=max(PROFILE.ddp_world_sizes[:2]), device="cpu", bucket_cap_mb=cap))
        for ws in PROFILE.ddp_world_sizes:
            marks = [pytest.mark.distributed]
            if caps.cuda and ws > caps.cuda_device_count:
                marks.append(pytest.mark.skip(reason=f"nccl at world size {ws} needs {ws} GPUs, "
                                                     f"found {caps.cuda_device_count}"))
            out.append(case("ddp", marks=marks, model=model, backend="nccl", world_size=ws, device="cuda:0"))
    return out


@pytest.mark.parametrize("c", _cases())
def test_ddp(c, bench_row, benchmark):
    device = "cpu" if c["backend"] in ("none", "gloo") else "cuda"
    ws = 0 if c["backend"] == "none" else c["world_size"]
    extra = ["--bucket-cap-mb", str(c["bucket_cap_mb"])] if c.get("bucket_cap_mb") else None
    launched = benchmark.pedantic(runs.run, args=(c["model"], ws, device, extra), rounds=1, iterations=1)
    if not launched.ok:
        bench_row.check(False, launched.reason, status="error")
    # the benchmark's samples are the steady-state steps (slowest rank per step), not the launch
    record_step_samples(benchmark, [ms / 1e3 for ms in launched.result["step_ms_slowest_rank"]])
    if not c.get("bucket_cap_mb"):
        runs.remember(c["model"], device, ws, launched)
    result = launched.result
    bench_row.update({k: result.get(k) for k in (
        "threads_per_rank", "step_ms_p50", "step_ms_p90", "samples_per_s", "comm_share", "grad_max_abs_diff",
        "param_max_abs_diff_across_ranks", "bucket_cap_mb", "batch_per_rank", "global_batch", "steps", "scaling",
        "checks_note")})
    bench_row["launch_wall_s"] = launched.wall_s
    if c["backend"] == "none":
        bench_row["scaling_efficiency"] = 1.0
        return  # the reference itself: nothing to compare (checks_note says so)
    bench_row.update(runs.efficiency_vs_baselines(c["model"], device, ws, launched))
    if device == "cuda" and probe().cuda_device_count == 1:
        bench_row["note"] = "one GPU on this machine: nccl ran at world size 1 only"
    bench_row.check(result["grad_max_abs_diff"] <= GRAD_TOL,
                    f"DDP gradients differ from single-process ones by {result['grad_max_abs_diff']:.3g} "
                    f"(> {GRAD_TOL:g})")
    tol = PARAM_TOL[c["backend"]]
    bench_row["param_tol"] = tol
    bench_row.check(result["param_max_abs_diff_across_ranks"] <= tol,
                    f"parameters differ across ranks by {result['param_max_abs_diff_across_ranks']:.3g} "
                    f"(> {tol:g} for {c['backend']})")


@pytest.mark.distributed
def test_two_nodes_on_localhost_merge_into_one_report(tmp_path):
    """Two torchrun "nodes" joined by c10d rendezvous: global rank 0 writes one result with
    both nodes' ranks in it."""
    launched = runs.run_two_nodes_on_localhost("mlp", workdir=tmp_path)
    assert launched.ok, launched.reason + "\n" + launched.log_tail
    assert launched.result["world_size"] == 2
    assert sorted(n[0] for n in launched.result["nodes"]) == [0, 1]
    assert launched.result["grad_max_abs_diff"] <= GRAD_TOL
