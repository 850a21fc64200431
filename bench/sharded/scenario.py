"""Sharded-training rows: one process vs DDP vs FSDP2 (``fully_shard``, optionally in bf16
mixed precision), with and without activation checkpointing (non-reentrant, reentrant,
selective), on a decoder of the generation zoo under the one torchrun launcher, plus the
tiny BERT's checkpointing in-process. Each row is proven equal to one process on the whole
batch (every step's loss, every full parameter; for tiny BERT every gradient) before its step
time, tokens/s, per-rank bytes and peak memory count -> sharded.csv."""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from bench.core.face import one_of, run_as_row
from bench.core.hardware import float8_capable
from bench.core.launch import LaunchResult, in_temp_dir, launch, torchrun_command
from bench.core.numerics import SHARDED_MP_TOL, SHARDED_MP_UPDATE_TOL, SHARDED_TOL

WORKER = "bench.sharded.worker"
STRATEGIES = ("single", "ddp", "fsdp", "tp", "fsdp+tp")
MODELS = ("llama", "gpt2", "mixtral", "tiny_bert")  # the zoo's decoders; tiny_bert: checkpointing only
CHECKPOINT_DROPOUT = 0.1  # single-process checkpointing rows train with dropout: recomputation must replay its masks
# (steps, global batch, sequence length) per profile; the decoder's size is the generation zoo's
SHAPES = {"smoke": (4, 4, 32), "standard": (4, 8, 64), "full": (20, 16, 256)}


@dataclasses.dataclass(frozen=True)
class Config:
    """One sharded-training case (``world_size`` 1 for ``single``)."""

    model: str = "llama"
    strategy: str = "fsdp"
    world_size: int = 2
    checkpointing: str = "none"
    dropout: float = 0.0
    mp: str = "fp32"
    device: str = "cpu"
    offload: bool = False
    compile: bool = False  # torch.compile of every decoder layer (--bench-compile-backend), per block

    def __post_init__(self):
        from bench.sharded.checkpointing import MODES

        one_of("model", self.model, MODELS)
        one_of("strategy", self.strategy, STRATEGIES)
        one_of("checkpointing", self.checkpointing, MODES)
        one_of("mp", self.mp, ("fp32", "bf16", "float8"))
        if self.world_size < 1 or self.strategy == "single" and self.world_size != 1:
            raise ValueError(f"world_size={self.world_size} does not fit strategy={self.strategy!r} "
                             "(single: 1; ddp / fsdp / tp: 1 or more)")
        if self.dropout and self.strategy != "single":
            raise ValueError(f"dropout={self.dropout} needs strategy 'single': a rank's masks depend on how the "
                             "batch is split, so a sharded run with dropout cannot equal one process")
        if self.mp != "fp32" and self.strategy != "fsdp":
            raise ValueError(f"mp={self.mp!r} is FSDP2's MixedPrecisionPolicy: strategy must be 'fsdp'")
        if self.mp == "float8" and (not self.device.startswith("cuda") or self.model != "llama"):
            raise ValueError("mp='float8' is torchao's float8 training (convert_to_float8_training): its scaled "
                             "matmuls need a CUDA GPU of compute capability 8.9+; device must be 'cuda...', "
                             "model 'llama'")
        if self.offload and (self.strategy != "fsdp" or not self.device.startswith("cuda")):
            raise ValueError("offload=True is FSDP2's CPUOffloadPolicy: it needs strategy 'fsdp' and a cuda device")
        if self.strategy in ("tp", "fsdp+tp") and (self.model != "llama" or self.checkpointing != "none"):
            raise ValueError(f"strategy {self.strategy!r} (tensor parallelism) has its plan for the zoo's Llama, "
                             "without checkpointing: model 'llama', checkpointing 'none'")
        if self.strategy == "fsdp+tp" and (self.world_size < 4 or self.world_size % 2):
            raise ValueError(f"strategy 'fsdp+tp' runs on a (world / 2, 2) mesh: world_size must be an even number "
                             f">= 4, got {self.world_size}")
        if self.compile and (self.strategy not in ("single", "ddp", "fsdp") or self.checkpointing != "none"
                             or self.model == "tiny_bert"):
            raise ValueError("compile=True compiles the decoder's layers in a single, ddp or fsdp run without "
                             "checkpointing (strategy single / ddp / fsdp, checkpointing 'none', a decoder model)")
        if self.model == "tiny_bert" and (self.strategy != "single" or self.checkpointing == "none"):
            raise ValueError("model 'tiny_bert' runs checkpointing rows only: strategy 'single' and a checkpointing "
                             "mode other than 'none'")


def _size(session, device: str) -> str:
    from bench.models.decoders import size_for

    return size_for(session.profile.gen_size, device)


@in_temp_dir
def launch_run(c: dict, session, extra: list[str] | None = None, timeout_s: float = 300.0,
               workdir: Path | None = None) -> LaunchResult:
    steps, batch, seq = SHAPES[session.profile.gen_size]
    out = workdir / "sharded.json"
    args = ["--strategy", c["strategy"], "--model", c["model"], "--size", _size(session, c["device"]),
            "--steps", str(steps), "--global-batch", str(batch), "--seq", str(seq), "--out", str(out),
            "--device", "cuda" if c["device"].startswith("cuda") else "cpu",
            "--checkpointing", c.get("checkpointing", "none"), "--mp", c.get("mp", "fp32"),
            *(["--offload"] if c.get("offload") else []),
            *(["--compile", session.settings.compile_backend] if c.get("compile") else []),
            *[x for spec in session.settings.plugins for x in ("--plugin", spec)], *(extra or [])]
    if c["strategy"] == "single":
        cmd = [sys.executable, "-m", WORKER, *args]
    else:
        cmd = torchrun_command(WORKER, args, c["world_size"])
    return launch([cmd], out, timeout_s)


def _variants(session) -> list[tuple]:
    """(model, strategy, world size, checkpointing, dropout, mp) of the profile's rows."""
    d = CHECKPOINT_DROPOUT
    if not session.profile.sharded_all:  # smoke: one torchrun row exercising both, one in-process row
        return [("llama", "fsdp", 2, "non_reentrant", 0.0, "fp32"), ("tiny_bert", "single", 1, "selective", d, "fp32")]
    out = [("llama", "single", 1, "none", 0.0, "fp32")]
    out += [(m, "single", 1, mode, d, "fp32") for m in ("llama", "tiny_bert")
            for mode in ("non_reentrant", "reentrant", "selective")]
    for ws in (ws for ws in session.profile.ddp_world_sizes if ws > 1):
        out += [("llama", "ddp", ws, "none", 0.0, "fp32"), ("llama", "fsdp", ws, "none", 0.0, "fp32"),
                ("llama", "fsdp", ws, "non_reentrant", 0.0, "fp32"), ("llama", "fsdp", ws, "none", 0.0, "bf16"),
                ("llama", "tp", ws, "none", 0.0, "fp32")]
        if ws >= 4:  # a 2-D mesh: FSDP2 over pairs of ranks, TP within each pair
            out.append(("llama", "fsdp+tp", ws, "none", 0.0, "fp32"))
    # compiled training (torch.compile of every layer): one process, and DDP and FSDP2 at the smallest world
    out += [("llama", "single", 1, "none", 0.0, "fp32", False, True)]
    out += [("llama", strategy, ws, "none", 0.0, "fp32", False, True) for ws in session.profile.ddp_world_sizes[1:2]
            for strategy in ("fsdp", "ddp")]
    return out


def cases(session) -> list:

    import pytest

    from bench.core.hardware import probe
    from bench.core.profiles import case, lacks
    from bench.sharded.checkpointing import unavailable

    out, cores, gpus = [], os.cpu_count() or 1, probe().cuda_device_count
    for device in ("cpu",) + (("cuda:0",) if any(d.startswith("cuda") for d in session.devices) else ()):
        variants = list(_variants(session))
        if device != "cpu" and session.profile.sharded_all:  # the host holds the shards: GPU memory saved
            variants += [("llama", "fsdp", ws, "none", 0.0, "fp32", True)
                         for ws in session.profile.ddp_world_sizes if ws > 1]
        if device != "cpu":  # torchao's float8 training under FSDP2: GPUs only
            variants += [("llama", "fsdp", ws, "none", 0.0, "float8") for ws in session.profile.ddp_world_sizes[:2]]
        variants = [v + (False,) * (8 - len(v)) for v in variants]  # (..., offload, compile)
        for model, strategy, ws, ckpt, dropout, mp, offload, compiled in variants:
            marks = []
            if device == "cpu" and ws > cores:
                marks.append(lacks(f"gloo at world size {ws} on {cores} cores would oversubscribe"))
            elif device != "cpu" and ws > gpus:
                reason = f"nccl at world size {ws} needs {ws} GPU(s); this machine has {gpus}"
                marks.append(lacks(reason))
            elif mp == "float8" and not float8_capable(device):
                marks.append(lacks("float8 training (torch._scaled_mm) needs a GPU of compute capability 8.9+"))
            elif ckpt != "none" and unavailable(ckpt):
                marks.append(lacks(unavailable(ckpt)))
            elif strategy in ("tp", "fsdp+tp") and (why := _tp_unsplit(_size(session, device),
                                                                        ws if strategy == "tp" else 2)):
                marks.append(pytest.mark.skip(reason=why))
            out.append(case("sharded", marks=marks, model=model, strategy=strategy, world_size=ws,
                            checkpointing=ckpt, dropout=dropout, mp=mp, device=device,
                            **({"offload": True} if offload else {}), **({"compile": True} if compiled else {})))
    return out


def _tp_unsplit(size: str, world: int) -> str | None:
    """Why tensor parallelism cannot split the zoo's decoder of ``size`` over ``world`` ranks."""
    from bench.models.decoders import SIZES
    from bench.sharded.parallel import tp_unsplit

    s = SIZES[size]
    why = tp_unsplit(s.heads, s.kv_heads, s.intermediate, world)
    return f"{why} (the {size} decoder)" if why else None


def in_process(case: dict) -> bool:
    """Single-process checkpointing rows compare gradients in this process (one step, dropout
    on, same seed); every other row is a torchrun launch of the worker."""
    return case["strategy"] == "single" and case.get("checkpointing", "none") != "none"


def _loss_fn(case: dict, session, device: str):
    """(model in training mode, loss of one batch) for an in-process checkpointing row."""
    import torch

    from bench.models import decoders as zoo

    steps, batch, seq = SHAPES[session.profile.gen_size]
    if case["model"] == "tiny_bert":
        from transformers import BertConfig, BertForSequenceClassification

        from bench.models.text import tiny_bert_config

        torch.manual_seed(0)
        fields = tiny_bert_config()
        model = BertForSequenceClassification(BertConfig(
            **fields, num_labels=2, hidden_dropout_prob=case["dropout"],
            attention_probs_dropout_prob=case["dropout"])).to(device)
        ids = torch.randint(1, fields["vocab_size"], (batch, seq), generator=torch.Generator().manual_seed(0))
        labels = torch.arange(batch) % 2
        return model, lambda m: m(input_ids=ids.to(device), labels=labels.to(device)).loss
    model, _ = zoo.build(case["model"], _size(session, device), attn="sdpa", device=device)
    model.config.attention_dropout = case["dropout"]
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = case["dropout"]
    ids = torch.randint(1, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    return model, lambda m: m(input_ids=ids.to(device), labels=ids.to(device)).loss


def checkpoint_case(case: dict, row, session, preserve_rng_state: bool = True, benchmark=None) -> None:
    """One step's every gradient with ``case['checkpointing']`` against the plain model, same
    input and seed; the step's peak allocator bytes and time on both sides.
    ``preserve_rng_state=False`` plants a recomputation that draws new dropout masks."""
    from bench.core.timing import record_step_samples
    from bench.sharded import checkpointing

    model, loss_fn = _loss_fn(case, session, case["device"])
    args, kwargs = (model, loss_fn, case["checkpointing"]), {"preserve_rng_state": preserve_rng_state}
    r = benchmark.pedantic(checkpointing.compare, args=args, kwargs=kwargs, rounds=1, iterations=1) \
        if benchmark is not None else checkpointing.compare(*args, **kwargs)
    if benchmark is not None:  # the checkpointed steps, not the whole comparison
        record_step_samples(benchmark, [ms / 1e3 for ms in r["step_ms_samples"]])
    row.update({k: v for k, v in r.items() if k not in ("checkpointing", "step_ms_samples")})
    row["method"] = "one step's gradients vs the plain model, in-process"
    row["step_peak_fraction"] = r["step_peak_bytes"] / r["step_peak_bytes_no_checkpoint"]
    row["step_time_vs_no_checkpoint"] = r["step_ms_p50"] / r["step_ms_p50_no_checkpoint"]
    why = checkpointing.not_recomputed(case["checkpointing"], r["forward_calls"], r["forward_calls_no_checkpoint"])
    row.check(why is None, why or "")
    row.check(r["grad_max_abs_diff"] <= SHARDED_TOL,
              f"gradient of {r['grad_worst']} differs with {case['checkpointing']} checkpointing by "
              f"{r['grad_max_abs_diff']:.3g} (> {SHARDED_TOL:g}): the recomputation is not the forward it replaces")


# Seconds a row takes on the reference 2-core CPU (docs/methods.md, "The run's time plan"): in process (the model,
# its plain and checkpointed steps, the gradient proof), or a torchrun world of two (its start, the
# steps, the equivalence check against one process).
_SINGLE_S, _WORLD_S, _COMPILE_S = 10.0, 21.0, 20.0


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan)."""
    from bench.core.plan import EMULATION_FACTOR, Cost

    cost = (_SINGLE_S if case["world_size"] == 1 else _WORLD_S) * (1.0 if profile.sharded_all else 0.35)
    if case["world_size"] == 1 and case["model"] != "llama":
        cost = 1.0  # a small model's in-process rows: seconds
    if case.get("compile"):  # Inductor's build of the layers' graphs: 33 s single, 41 s FSDP2 at world 2 in all
        cost += _COMPILE_S
    emulated = case.get("mp") in machine.emulated
    if emulated:
        cost *= EMULATION_FACTOR * 0.55
    return Cost(fixed_s=cost, why=f"{case.get('mp')} mixed precision is emulated on this CPU" if emulated else "",
                essential=case["strategy"] == "fsdp" and case["world_size"] > 1 and case.get("mp") == "fp32")


def run_case(case: dict, benchmark, row, session, *, extra: list[str] | None = None) -> None:
    """Launch, then check the equivalence: every step's loss and every full parameter against
    one process on the whole batch (no checkpointing), naming the step and the parameter."""
    from bench.core.timing import record_step_samples

    c = case
    if in_process(c):
        return checkpoint_case(c, row, session, benchmark=benchmark)
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
        "cuda_peak_allocated_mib_max_rank", "step_peak_bytes", "step_peak_bytes_no_checkpoint",
        "compute_ms_p50", "comm_share_est", "update_rel_err_max", "update_worst")})
    row["method"] = f"{r['steps']} steps vs one process on the whole batch (torchrun)"
    row["loss_curve"] = r.get("losses")  # the world's mean loss of every step: judged between runs
    row["loss_curve_setup"] = {"seed": 0, "data_order": "fixed batches from torch.Generator seed 0, split by rank",
                               "world_size": c["world_size"], "strategy": c["strategy"]}
    row["launch_wall_s"] = launched.wall_s
    row["sharded_fraction"] = r["param_bytes_per_rank"] / r["param_bytes_unsharded"]
    if r.get("step_peak_bytes_no_checkpoint"):
        row["step_peak_fraction"] = r["step_peak_bytes"] / r["step_peak_bytes_no_checkpoint"]
    if c.get("checkpointing", "none") != "none":
        from bench.sharded.checkpointing import not_recomputed

        calls, plain = r.get("forward_calls"), r.get("forward_calls_no_checkpoint")
        row.update(forward_calls=calls, forward_calls_no_checkpoint=plain)
        why = not_recomputed(c["checkpointing"], calls or 0, plain or 0)
        row.check(why is None, why or "")
    tol = SHARDED_MP_TOL if c.get("mp", "fp32") != "fp32" else SHARDED_TOL

    def beyond_tol(d) -> bool:  # None: a non-finite difference (NaN or inf, written as null)
        return d is None or d > tol

    beyond = [i for i, d in enumerate(r["loss_diffs"]) if beyond_tol(d)]
    row.check(not beyond, f"loss differs from one process on the whole batch from step {beyond[0] if beyond else 0} "
                          f"on (by {r['loss_max_abs_diff']} > {tol:g}); worst parameter "
                          f"{r['param_worst']} ({r['param_max_abs_diff']})")
    if c.get("compile"):  # a compile that captured nothing ran eager code: not a compiled row
        row.update({k: r.get(k) for k in ("calls_captured", "graph_breaks", "recompiles", "build_s")})
        row["compile_backend"] = session.settings.compile_backend
        row.check(bool(r.get("calls_captured")), "torch.compile of the layers captured no graph: it ran eager code",
                  status="error")
    row.check(not r["params_missing"], f"parameters missing after training: {r['params_missing']}")
    if c.get("mp", "fp32") == "fp32":
        row.check(not beyond_tol(r["param_max_abs_diff"]),
                  f"parameter {r['param_worst']} differs from one process's by {r['param_max_abs_diff']} "
                  f"(> {tol:g}) after {r['steps']} steps")
    else:  # bf16 rounding is as large as a defect's absolute effect: judge each update relative to itself
        err = r["update_rel_err_max"]
        row.check(err is not None and err <= SHARDED_MP_UPDATE_TOL,
                  f"parameter {r['update_worst']}'s update differs from one process's by {err} of itself "
                  f"(> {SHARDED_MP_UPDATE_TOL:g}) after {r['steps']} steps in {c['mp']} mixed precision")


def run(config: Config, session=None) -> dict:
    """The case's sharded.csv row, without pytest."""
    return run_as_row("sharded", dataclasses.asdict(config), run_case, session)
