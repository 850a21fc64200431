"""DDP worker: one process per rank under torchrun (or plain ``python -m`` with --no-ddp
for the single-process baseline).

Weak scaling: every rank trains on its own fixed-size shard (``--batch-per-rank``); the
global batch is ``world_size`` shards. Per step it records its own time; rank 0 gathers all
ranks' times and takes the slowest rank per step (a step ends when the slowest rank ends). It also checks that DDP's
gradients after one step equal single-process gradients on the concatenated batch, and
that parameters are identical on every rank after the timed steps.

Multi-node (the same worker):
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m bench.distributed.worker --model tiny_bert --out ddp.json
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import os
import socket
import statistics
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from bench.core.files import atomic_write_json
from bench.core.hardware import synchronize
from bench.core.launch import inject_fault, threads_per_rank
from bench.core.profiles import PROFILES
from bench.core.steps import StepTimer
from bench.core.timing import percentile
from bench.registry import get_model


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp")
    p.add_argument("--profile", default="standard", choices=tuple(PROFILES))
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-per-rank", type=int, default=64)
    p.add_argument("--bucket-cap-mb", type=float, default=25.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads per rank (0: cores / local world size)")
    p.add_argument("--out", required=True, help="result JSON, written by global rank 0")
    p.add_argument("--no-ddp", action="store_true", help="single process, no process group (the baseline)")
    p.add_argument("--fault", default="none", help="test hook: raise:RANK or hang:RANK")
    p.add_argument("--timeout-s", type=float, default=120.0, help="collective timeout")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cpu (gloo) or cuda (nccl, one rank per GPU); auto: cuda when available")
    return p.parse_args(argv)


def _progress(out: Path, rank: int, text: str) -> None:
    out.with_name(f"{out.stem}.rank{rank}.progress").write_text(text)


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


@record
def main(argv=None) -> None:
    a = _args(argv)
    out = Path(a.out)
    profile = PROFILES[a.profile]
    ddp = not a.no_ddp
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available() if a.device == "auto" else a.device == "cuda"
    device = f"cuda:{local_rank}" if cuda else "cpu"
    threads = threads_per_rank(a.threads)
    torch.set_num_threads(threads)
    backend = ("nccl" if cuda else "gloo") if ddp else "none"
    _progress(out, rank, "init")
    if ddp:
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=a.timeout_s))
    spec = get_model(a.model)
    torch.manual_seed(0)
    model = spec.build().to(device)
    reference = copy.deepcopy(model)
    inputs, target = spec.batch(a.batch_per_rank * world, device, profile.seq_len)
    shard = slice(rank * a.batch_per_rank, (rank + 1) * a.batch_per_rank)
    my_inputs = tuple(x[shard] for x in inputs)
    my_target = target[shard]
    inject_fault(a.fault, rank)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if cuda else None, bucket_cap_mb=a.bucket_cap_mb)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(sync: bool = True):
        opt.zero_grad(set_to_none=True)
        ctx = model.no_sync() if (ddp and not sync) else contextlib.nullcontext()
        with ctx:
            loss = spec.compute_loss(model(*my_inputs), my_target)  # mean over the shard
            loss.backward()
        opt.step()
        return loss

    # -- correctness: one DDP step's gradients vs single-process gradients on the whole batch
    _progress(out, rank, "gradient check")
    opt.zero_grad(set_to_none=True)
    spec.compute_loss(model(*my_inputs), my_target).backward()
    ddp_grads = _grads(model.module if ddp else model)
    reference.train()
    spec.compute_loss(reference(*inputs), target).backward()
    grad_diff = max(float((g - r).abs().max()) for g, r in zip(ddp_grads, _grads(reference)))
    opt.zero_grad(set_to_none=True)

    # -- timing: warm-up apart, then per-step times (synchronised), synced and no_sync steps
    _progress(out, rank, "timing")
    for _ in range(a.warmup):
        step()
    synchronize(device)
    synced, unsynced = StepTimer(device), StepTimer(device)
    for i in range(a.steps):
        if ddp:
            dist.barrier()
        synced.begin()
        step()
        synced.end(i)
    times = synced.steps
    # -- parameters identical on every rank after the synced steps (before no_sync ones)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu()
    if ddp:
        for i in range(max(3, a.steps // 2)):
            dist.barrier()
            unsynced.begin()
            step(sync=False)
            unsynced.end(i)
    nosync = unsynced.steps
    info = {"rank": rank, "host": socket.gethostname(), "node_rank": int(os.environ.get("GROUP_RANK", 0)),
            "times_s": times, "nosync_s": nosync, "grad_max_abs_diff": grad_diff}
    if ddp:
        gathered = [None] * world
        dist.all_gather_object(gathered, info)
        if backend == "gloo":
            params = [torch.zeros_like(flat) for _ in range(world)]
            dist.all_gather(params, flat)
            param_diff = max(float((p - params[0]).abs().max()) for p in params)
        else:
            param_diff = _param_diff_nccl(flat, device)
    else:
        # One process has no other rank to compare with, and its "DDP gradients" are the
        # reference's own computation: both columns stay empty, with the reason in the row.
        gathered, param_diff = [dict(info, grad_max_abs_diff=None)], None
    if rank == 0:
        _write_result(out, a, gathered, world, backend, threads, param_diff, spec)
    _progress(out, rank, "done")
    if ddp:
        dist.barrier()
        dist.destroy_process_group()


def _param_diff_nccl(flat: torch.Tensor, device: str) -> float:
    """Max difference of every rank's parameters from the mean (zero when identical)."""
    t = flat.to(device)
    mean = t.clone()
    dist.all_reduce(mean)
    mean /= dist.get_world_size()
    diff = (t - mean).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def _write_result(out: Path, a, gathered: list[dict], world: int, backend: str, threads: int,
                  param_diff: float | None, spec) -> None:
    slowest = [max(r["times_s"][i] for r in gathered) for i in range(a.steps)]
    p50 = statistics.median(slowest)
    result = {
        "model": a.model, "backend": backend, "world_size": world, "threads_per_rank": threads,
        "batch_per_rank": a.batch_per_rank, "global_batch": a.batch_per_rank * world, "steps": a.steps,
        "warmup_steps": a.warmup, "bucket_cap_mb": a.bucket_cap_mb if backend != "none" else None,
        "scaling": "weak (fixed per-rank batch)",
        "step_ms_p50": p50 * 1e3, "step_ms_p90": percentile(slowest, 90) * 1e3,
        # samples processed over the time spent processing them (not over a mean step time)
        "samples_per_s": a.batch_per_rank * world * a.steps / sum(slowest),
        "grad_max_abs_diff": None if backend == "none" else max(r["grad_max_abs_diff"] for r in gathered),
        "param_max_abs_diff_across_ranks": param_diff,
        "checks_note": "single process: it is the reference; no DDP gradients or other ranks to compare"
        if backend == "none" else None,
        "nodes": sorted({(r["node_rank"], r["host"]) for r in gathered}),
        "step_ms_slowest_rank": [t * 1e3 for t in slowest],
    }
    nosync = [max(r["nosync_s"][i] for r in gathered) for i in range(len(gathered[0]["nosync_s"]))]
    if nosync:
        result["nosync_step_ms_p50"] = statistics.median(nosync) * 1e3
        result["comm_share"] = max(0.0, 1 - statistics.median(nosync) / p50)
    atomic_write_json(out, result)


if __name__ == "__main__":
    main()
