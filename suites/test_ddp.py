"""Single process vs DistributedDataParallel under torchrun -> ddp.csv."""
import pytest

from bench.core.hardware import probe
from bench.core.profiles import cases_from
from bench.core.timing import record_step_samples
from bench.distributed import scenario as runs

GRAD_TOL, PARAM_TOL = runs.GRAD_TOL, runs.PARAM_TOL


@cases_from(runs.cases)
def test_ddp(c, bench_row, benchmark, bench_session):
    device = "cpu" if c["backend"] in ("none", "gloo") else "cuda"
    ws = 0 if c["backend"] == "none" else c["world_size"]
    extra = ["--bucket-cap-mb", str(c["bucket_cap_mb"])] if c.get("bucket_cap_mb") else None
    launched = benchmark.pedantic(runs.run, args=(c["model"], ws, device, extra),
                                  kwargs={"profile": bench_session.profile}, rounds=1, iterations=1)
    if not launched.ok:
        bench_row.check(False, launched.reason, status="error")
    # the benchmark's samples are the steady-state steps (slowest rank per step), not the launch
    record_step_samples(benchmark, [ms / 1e3 for ms in launched.result["step_ms_slowest_rank"]])
    if not c.get("bucket_cap_mb"):
        runs.remember(bench_session, c["model"], device, ws, launched)
    result = launched.result
    bench_row.update({k: result.get(k) for k in (
        "threads_per_rank", "step_ms_p50", "step_ms_p90", "samples_per_s", "comm_share", "grad_max_abs_diff",
        "param_max_abs_diff_across_ranks", "bucket_cap_mb", "batch_per_rank", "global_batch", "steps", "scaling",
        "checks_note")})
    bench_row["launch_wall_s"] = launched.wall_s
    if c["backend"] == "none":
        bench_row["scaling_efficiency"] = 1.0
        return  # the reference itself: nothing to compare (checks_note says so)
    bench_row.update(runs.efficiency_vs_baselines(bench_session, c["model"], device, ws, launched))
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
def test_two_nodes_on_localhost_merge_into_one_report(tmp_path, bench_session):
    """Two torchrun "nodes" joined by c10d rendezvous: global rank 0 writes one result with
    both nodes' ranks in it."""
    launched = runs.run_two_nodes_on_localhost("mlp", workdir=tmp_path, profile=bench_session.profile)
    assert launched.ok, launched.reason + "\n" + launched.log_tail
    assert launched.result["world_size"] == 2
    assert sorted(n[0] for n in launched.result["nodes"]) == [0, 1]
    assert launched.result["grad_max_abs_diff"] <= GRAD_TOL
