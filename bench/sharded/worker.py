"""Sharded-training worker: one process per rank under torchrun (``--strategy single`` runs
alone). Trains a decoder from the generation zoo (causal-LM loss, SGD with momentum) for N steps on the
same global batches under one strategy: ``single`` (one process, the whole batch), ``ddp``
(DistributedDataParallel), ``fsdp`` (FSDP2: ``torch.distributed.fsdp.fully_shard`` per decoder
layer, then the root, optionally in mixed precision) or ``tp`` (tensor parallelism of the layers'
projections, every rank on the whole batch; ``bench.sharded.parallel``), optionally with activation
checkpointing in one of ``bench.sharded.checkpointing.MODES``, or with every layer under
``torch.compile`` (``--compile BACKEND``: calls captured, breaks, recompiles and build time
recorded). (Dropout stays off: a rank's masks depend on how the batch is split; checkpointing
with dropout is proven in-process, see ``checkpointing.compare``.)

Equivalence first: rank 0 also trains an unwrapped copy on the whole global batch without
checkpointing, and compares the loss of every step and, at the end, every full parameter
(FSDP's gathered with ``DTensor.full_tensor()``); the result names the parameter and the step
that differ. Per rank: step times, peak RSS, and the bytes of parameters, gradients and
optimizer state it holds (local shards) against the unsharded sizes; rank 0's peak
allocator bytes of one step with and without checkpointing; and an *estimated* communication
share: 1 - (rank 0's step on its own shard of the batch, unwrapped, no collectives) / (the
sharded step of the slowest rank). The estimate also counts FSDP's gather and reshard copies
and any imbalance as communication.

Several nodes: start the same command on each with torchrun's rendezvous, e.g.
``torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400
-m bench.sharded.worker --strategy fsdp --device cuda --out r.json`` (rank 0 writes the result).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from bench.core.compiled import dynamo_counts
from bench.core.files import atomic_write_json
from bench.core.hardware import peak_memory_columns, reset_peak_memory, synchronize
from bench.core.launch import inject_fault, threads_per_rank
from bench.core.timing import percentile
from bench.models import decoders as zoo
from bench.sharded import checkpointing, parallel


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", choices=("single", "ddp", "fsdp", "tp", "fsdp+tp"), default="fsdp")
    p.add_argument("--model", default="llama", choices=zoo.DECODERS)
    p.add_argument("--size", default="smoke", choices=tuple(zoo.SIZES))
    p.add_argument("--checkpointing", default="none", choices=checkpointing.MODES,
                   help="activation checkpointing of every decoder layer")
    p.add_argument("--mp", default="fp32", choices=("fp32", "bf16", "float8"),
                   help="fsdp: bf16: FSDP2 MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32); float8: "
                        "torchao's float8 training of the linear layers (CUDA, compute capability 8.9+)")
    p.add_argument("--offload", action="store_true",
                   help="fsdp on cuda: FSDP2 CPUOffloadPolicy (shards, gradients and the optimizer step on the host)")
    p.add_argument("--compile", default="none", metavar="BACKEND",
                   help="torch.compile every decoder layer with this backend (inductor, aot_eager; none: eager), "
                        "per block as TorchTitan does, before sharding")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a --bench-plugin of the run (a compile backend or model it registers), loaded first")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--global-batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--out", required=True)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (gloo) or cuda (nccl, a GPU a rank)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="collective timeout")
    p.add_argument("--fault", default="none",
                   help="test hooks: raise:RANK, hang:RANK, lose_grad:RANK (that rank's copy or shard of the "
                        "last decoder layer's reduced gradient is zeroed before the optimizer step)")
    return p.parse_args(argv)


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _bytes(tensors) -> int:
    return sum(_local(t).numel() * _local(t).element_size() for t in tensors if t is not None)


def _batches(steps: int, batch: int, seq: int, vocab: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(1, vocab, (batch, seq), generator=gen) for _ in range(steps)]


def _build(a, device):
    model, _ = zoo.build(a.model, a.size, attn="sdpa", device=device)
    if a.mp == "float8":  # torchao's float8 training: every linear layer but the head, before sharding (so
        # the one-process reference, a copy of this model, is float8 too: the comparison is of the sharding)
        from torchao.float8 import convert_to_float8_training

        convert_to_float8_training(model, module_filter_fn=lambda mod, fqn: fqn != "lm_head")
    return model.train()


def _reference(model, batches, mp: str = "fp32") -> tuple[list[float], dict[str, torch.Tensor]]:
    """Losses and final parameters of one process on the whole batches, no checkpointing.
    ``mp`` bf16 does what FSDP2's MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)
    does, without sharding: forward and backward on a bf16 copy of the fp32 parameters, the
    gradients cast to fp32 for the optimizer step on the fp32 parameters."""
    opt = _optimizer(model)
    losses = []
    for ids in batches:
        work = copy.deepcopy(model).to(torch.bfloat16) if mp == "bf16" else model
        loss = work(input_ids=ids, labels=ids).loss
        loss.backward()
        if work is not model:
            for p, w in zip(model.parameters(), work.parameters()):
                p.grad = None if w.grad is None else w.grad.float()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    # on the CPU: rank 0's peak memory must not carry an unsharded copy of the model
    return losses, {n: p.detach().cpu().clone() for n, p in model.named_parameters()}


def _optimizer(model, tp: bool = False):
    """SGD with momentum (one state tensor per parameter). Not AdamW: its step m / sqrt(v)
    turns a rounding-level gradient (an embedding row whose contributions cancel) into a full
    +/- lr step whose sign is the rounding's; measured on the standard decoder, two correct
    runs then differed by 3.6e-3 on embed_tokens after 6 steps while every loss agreed exactly.
    The equivalence is about the gradient reduction, which SGD carries over unamplified."""
    # foreach=False: under tensor parallelism the projections are DTensors and the embeddings, norms
    # and head plain tensors, and a foreach kernel over both (the CUDA default) is refused by DTensor
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, foreach=False if tp else None)


def _fault(spec: str, rank: int, model):
    """Run a test hook (``bench.core.launch.inject_fault``); returns what to call after each
    backward (or None)."""
    kind = inject_fault(spec, rank)
    if kind == "no_compile":  # a stack where torch.compile silently runs eager code
        torch._dynamo.config.disable = True
    if kind == "lose_grad":  # the reduced gradient of one layer lost on one rank
        def lose():
            for p in model.model.layers[-1].parameters():
                if p.grad is not None:
                    _local(p.grad).zero_()
        return lose
    return None


def _step_peak(model, ids) -> tuple[int, int]:
    """Peak allocator bytes of one forward and backward (see checkpointing.step_peak_bytes), and
    the module forward calls in it (``checkpointing.counting_forwards``: recomputation shows)."""
    model(input_ids=ids, labels=ids).loss.backward()  # warm-up: first-call allocations are not the step's
    model.zero_grad(set_to_none=True)
    with checkpointing.counting_forwards() as calls:
        peak = checkpointing.step_peak_bytes(lambda: model(input_ids=ids, labels=ids).loss.backward())
    model.zero_grad(set_to_none=True)
    return peak, calls[0]


def _compute_ms(model, batches, rank: int, per: int) -> float:
    """Median steady step (forward, backward, optimizer) of the unwrapped model on this rank's
    shard of each batch: the sharded step without its collectives."""
    opt, times = _optimizer(model), []
    for ids in batches:
        mine = ids[rank * per:(rank + 1) * per]
        t0 = time.perf_counter()
        model(input_ids=mine, labels=mine).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append((time.perf_counter() - t0) * 1e3)
    steady = times[1:] or times
    return sorted(steady)[len(steady) // 2]


@record
def main(argv=None) -> None:
    a = _args(argv)
    for spec in a.plugin:  # the run's --bench-plugin modules: a backend or model they register is needed here
        from bench.registry import load_plugin

        load_plugin(spec)
    out = Path(a.out)
    sharded = a.strategy != "single"
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = a.device == "cuda"
    device = f"cuda:{local_rank}" if cuda else "cpu"
    torch.set_num_threads(threads_per_rank(0))
    if sharded:
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=a.timeout_s))
    if a.global_batch % world:
        raise ValueError(f"--global-batch {a.global_batch} does not split over {world} ranks")
    model = _build(a, device)
    vocab = model.config.vocab_size
    batches = [b.to(device) for b in _batches(a.steps, a.global_batch, a.seq, vocab)]
    # data shards: one a rank; under FSDP2 + TP one a pair of ranks (both halves see the same batch)
    shards = world // parallel.TP_WIDTH if a.strategy == "fsdp+tp" else world
    shard = rank // parallel.TP_WIDTH if a.strategy == "fsdp+tp" else rank
    per = a.global_batch // shards
    ref = compute_ms = peak_plain = calls_plain = compiled_before = compiled_first = None
    if rank == 0:
        initial = {n: p.detach().cpu().clone() for n, p in model.named_parameters()}
        ref = (*_reference(copy.deepcopy(model), batches, a.mp), initial)
        compute_ms = _compute_ms(copy.deepcopy(model), batches, rank, per) if a.strategy in ("ddp", "fsdp") else None
        peak_plain, calls_plain = _step_peak(copy.deepcopy(model), batches[0][:per])
    checkpointing.enable(model, a.checkpointing)
    if a.compile != "none":  # per block, after checkpointing and before sharding (TorchTitan's order)
        compiled_before = dynamo_counts()
        for layer in model.model.layers:
            layer.compile(backend=a.compile)
    peak, calls = _step_peak(model, batches[0][:per]) if rank == 0 and a.checkpointing != "none" \
        else (peak_plain, calls_plain)
    unsharded_param_bytes = _bytes(model.parameters())
    if a.strategy == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    elif a.strategy == "fsdp":
        model = parallel.fully_shard_layers(model, a.mp, a.offload, world, cuda)
    elif a.strategy == "tp":
        model = parallel.tensor_parallel(model, world, cuda)
    elif a.strategy == "fsdp+tp":  # TP inside each pair of ranks, then FSDP2 over the pairs (TorchTitan's order)
        mesh = parallel.mesh_2d(world, cuda)
        model = parallel.fully_shard_layers(parallel.tensor_parallel(model, world, cuda, mesh["tp"]), a.mp,
                                            a.offload, world, cuda, mesh["dp"])
    inner = model.module if a.strategy == "ddp" else model
    after_backward = _fault(a.fault, rank, inner)
    tp = a.strategy in ("tp", "fsdp+tp")
    opt = _optimizer(model, tp=tp)
    losses, step_s, grad_bytes = [], [], 0
    import gc

    gc.collect()  # the reference copy's tensors, before the peak is reset
    if cuda:
        torch.cuda.empty_cache()
    reset_peak_memory(device)
    for ids in batches:
        mine = ids if a.strategy == "tp" else ids[shard * per:(shard + 1) * per]
        synchronize(device)
        t0 = time.perf_counter()
        loss = model(input_ids=mine, labels=mine).loss
        loss.backward()
        if after_backward:
            after_backward()
        grad_bytes = _bytes(p.grad for p in model.parameters())
        opt.step()
        opt.zero_grad(set_to_none=True)
        synchronize(device)
        step_s.append(time.perf_counter() - t0)
        mean = loss.detach().clone()
        if sharded:
            dist.all_reduce(mean, op=dist.ReduceOp.AVG)  # equal shards of equal length: the global mean
        losses.append(float(mean))
        if a.compile != "none" and len(losses) == 1:  # the first step built the graphs
            compiled_first = dynamo_counts()
    full = {n: _full(p.detach()) for n, p in inner.named_parameters()}
    compiled = parallel.compiled_stats(compiled_before, compiled_first, step_s) if a.compile != "none" else {}
    stats = {"rank": rank, "step_s": step_s, "param_bytes": _bytes(model.parameters()), "grad_bytes": grad_bytes,
             "optimizer_bytes": _bytes(t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)),
             **peak_memory_columns(device)}
    gathered = [None] * world
    if sharded:
        dist.all_gather_object(gathered, stats)
    else:
        gathered = [stats]
    if rank == 0:
        atomic_write_json(out, {**_result(a, world, ref, losses, full, gathered, unsharded_param_bytes, peak,
                                          peak_plain, compute_ms, (calls, calls_plain)), **compiled})
    if sharded:
        dist.barrier()
        dist.destroy_process_group()


def _result(a, world, ref, losses, full, ranks, unsharded_param_bytes, peak, peak_plain, compute_ms,
            forward_calls=(None, None)) -> dict:
    ref_losses, ref_params, initial = ref
    from bench.core.numerics import abs_diff

    # NaN-aware: a NaN on one side is an infinite difference, never a pass (written as null)
    loss_diffs = [float(abs_diff(torch.tensor(x), torch.tensor(y))) for x, y in zip(losses, ref_losses)]
    param_diffs = {n: float(abs_diff(full[n], p).max()) for n, p in ref_params.items() if n in full}
    worst = max(param_diffs, key=param_diffs.get) if param_diffs else None
    # each parameter's distance from the reference relative to the reference's own update:
    # rounding noise is a small fraction of an update, a lost or doubled gradient a large one
    update_err = {n: float(abs_diff(full[n], p).norm() / max(float((p - initial[n]).norm()), 1e-30))
                  for n, p in ref_params.items() if n in full}
    worst_update = max(update_err, key=update_err.get) if update_err else None
    slowest = [max(r["step_s"][i] for r in ranks) for i in range(len(losses))]
    steady = slowest[1:] or slowest
    tokens = a.global_batch * a.seq
    return {
        "strategy": a.strategy, "world_size": world, "checkpointing": a.checkpointing, "mp": a.mp, "offload": a.offload,
        "model": a.model, "size": a.size,
        "steps": a.steps, "global_batch": a.global_batch, "seq": a.seq,
        "losses": losses, "reference_losses": ref_losses,
        "loss_max_abs_diff": max(loss_diffs), "loss_diffs": loss_diffs,
        "param_max_abs_diff": param_diffs[worst] if worst else None, "param_worst": worst,
        "update_rel_err_max": update_err[worst_update] if worst_update else None, "update_worst": worst_update,
        "params_compared": len(param_diffs), "params_missing": sorted(set(ref_params) - set(full))[:5],
        "step_ms_slowest_rank": [s * 1e3 for s in slowest],
        "step_ms_p50": percentile([s * 1e3 for s in steady], 50),
        "tokens_per_s": tokens / (sum(steady) / len(steady)),
        "param_bytes_per_rank": max(r["param_bytes"] for r in ranks),
        "grad_bytes_per_rank": max(r["grad_bytes"] for r in ranks),
        "optimizer_bytes_per_rank": max(r["optimizer_bytes"] for r in ranks),
        "param_bytes_unsharded": unsharded_param_bytes,
        "peak_rss_mib_max_rank": max((r.get("peak_rss_mib") or 0) for r in ranks) or None,
        "cuda_peak_allocated_mib_max_rank": max((r.get("cuda_peak_allocated_mib") or 0) for r in ranks) or None,
        "step_peak_bytes": peak, "step_peak_bytes_no_checkpoint": peak_plain,
        "forward_calls": forward_calls[0], "forward_calls_no_checkpoint": forward_calls[1],
        "compute_ms_p50": compute_ms,
        "comm_share_est": max(0.0, 1 - compute_ms / percentile([s * 1e3 for s in steady], 50)) if compute_ms else None,
    }


if __name__ == "__main__":
    main()
