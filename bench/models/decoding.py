"""Greedy generation, timed per token: ``generate()`` with a logits processor that stamps the
clock (device synchronised) after every forward, so the first stamp is the time to first token
(prefill) and the gaps between stamps are the decode steps; and the same greedy loop on an
exported decoder (``transformers.integrations.executorch``, one token per call)."""
from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from bench.core.hardware import peak_memory_columns, reset_peak_memory, synchronize
from bench.core.reference import Reference
from bench.core.timing import percentile, record_step_samples


@dataclasses.dataclass
class Generated:
    tokens: torch.Tensor          # (batch, new_tokens)
    logits: list[torch.Tensor]    # per generated position: (batch, vocab), fp32 on the CPU
    ttft_s: float                 # start -> first token's logits (prefill)
    step_s: list[float]           # each decode step after the first token
    cache: object = None          # the KV cache generate() returned (None for exported decoders)


def prompts(batch: int, prompt_len: int, vocab: int, device: str, seed: int = 0):
    """(input_ids, attention_mask, lengths): a left-padded batch (pad id 0) whose prompts get
    shorter along the batch, so every row but the first carries padding."""
    gen = torch.Generator().manual_seed(seed)
    step = max(1, prompt_len // (2 * batch)) if batch > 1 else 0
    lengths = [max(2, prompt_len - i * step) for i in range(batch)]
    ids = torch.zeros(batch, prompt_len, dtype=torch.long)
    mask = torch.zeros(batch, prompt_len, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, prompt_len - n:] = torch.randint(1, vocab, (n,), generator=gen)
        mask[i, prompt_len - n:] = 1
    return ids.to(device), mask.to(device), lengths


def step_clock(device: str, stamps: list[float]):
    """A logits processor that appends the synchronised clock to ``stamps`` after every forward."""
    from transformers import LogitsProcessor

    class StepClock(LogitsProcessor):
        def __call__(self, input_ids, scores):
            synchronize(device)
            stamps.append(time.perf_counter())
            return scores

    return StepClock()


def generate(model, input_ids, attention_mask, new_tokens: int, cache: str = "dynamic",
             compile_backend: str | None = None, device: str = "cpu", compile_mode: str = "default") -> Generated:
    """Greedy ``model.generate`` of exactly ``new_tokens`` tokens. ``cache``: "dynamic" or
    "static"; ``compile_backend``: torch.compile the decode forward (static cache only) through
    transformers' own ``CompileConfig``, in ``compile_mode`` ("default"; "reduce-overhead":
    CUDA graphs)."""
    from transformers import CompileConfig, LogitsProcessorList

    stamps: list[float] = []
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  return_dict_in_generate=True, output_logits=True,
                  logits_processor=LogitsProcessorList([step_clock(device, stamps)]))
    if cache == "static":
        kwargs["cache_implementation"] = "static"
    if compile_backend:
        cfg = CompileConfig(backend=compile_backend, mode=compile_mode, fullgraph=False, dynamic=False)
        cfg._compile_all_devices = True  # transformers compiles on GPUs only unless told
        kwargs["compile_config"] = cfg
    else:
        kwargs["disable_compile"] = True
    synchronize(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return Generated(out.sequences[:, input_ids.shape[1]:].cpu(), [x.float().cpu() for x in out.logits],
                     stamps[0] - t0, steps, getattr(out, "cache", None) or getattr(out, "past_key_values", None))


def export_decoder(model, max_len: int):
    """torch.export of the decoder with a static cache of ``max_len`` positions, batch 1,
    through transformers' ExecuTorch recipe (``convert_and_export_with_cache``)."""
    from transformers.integrations.executorch import convert_and_export_with_cache

    model.generation_config.cache_implementation = "static"
    model.generation_config.cache_config = {"batch_size": 1, "max_cache_len": max_len}
    return convert_and_export_with_cache(model)


def generate_exported(program, input_ids, new_tokens: int, device: str = "cpu") -> Generated:
    """The exported decoder's greedy loop (as transformers' recipe runs it: the prompt one
    token at a time, so the time to first token is a sequential prefill)."""
    module = program.module()
    logits, tokens = [], []
    synchronize(device)
    t0, stamps = time.perf_counter(), []
    with torch.no_grad():
        for pos in range(input_ids.shape[1]):
            out = module(input_ids=input_ids[:, pos:pos + 1],
                         cache_position=torch.tensor([pos], dtype=torch.long, device=device))
        pos = input_ids.shape[1]
        for _ in range(new_tokens):
            step_logits = out[:, -1, :]
            synchronize(device)
            stamps.append(time.perf_counter())
            logits.append(step_logits.float().cpu())
            token = step_logits.argmax(-1, keepdim=True)
            tokens.append(token)
            if len(tokens) == new_tokens:
                break
            out = module(input_ids=token, cache_position=torch.tensor([pos], dtype=torch.long, device=device))
            pos += 1
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return Generated(torch.cat(tokens, dim=1).cpu(), logits, stamps[0] - t0, steps)


def cache_tensors(cache) -> list[torch.Tensor]:
    """Every key and value tensor a transformers cache holds (layered API, or the older lists)."""
    if cache is None:
        return []
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                if isinstance(t, torch.Tensor)]
    return [t for t in (*getattr(cache, "key_cache", ()), *getattr(cache, "value_cache", ()))
            if isinstance(t, torch.Tensor)]


def kv_bytes_per_token(cache, batch: int) -> float | None:
    """Bytes the cache holds per sequence position per sequence (a static cache counts the
    positions it allocated)."""
    tensors = cache_tensors(cache)
    if not tensors:
        return None
    positions = max(t.shape[-2] for t in tensors)
    return sum(t.numel() * t.element_size() for t in tensors) / (batch * positions)


def sdpa_kernels(model, input_ids, attention_mask) -> str:
    """The attention kernels one prefill forward ran, as PyTorch's profiler names them (not
    assumed from the settings): e.g. aten::_scaled_dot_product_flash_attention_for_cpu."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if input_ids.is_cuda else [])
    with torch.no_grad(), profile(activities=activities) as prof:
        model(input_ids, attention_mask=attention_mask)
    words = ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention", "flex_attention")
    names = sorted({e.name for e in prof.events() if any(w in e.name for w in words)})
    specific = [n for n in names if n not in ("aten::scaled_dot_product_attention",)]
    return ", ".join(specific or names) or "none (attention as matmul + softmax)"


STEADY_AFTER = 2  # decode steps left out of the steady-state statistics (allocator, cache growth start)


def time_calls(call, first: Generated, budget, device: str, benchmark, row, min_rounds: int | None = None) -> list:
    """``call()`` (one greedy generation) again and again within ``budget`` (the first call,
    checked by the caller, was the warm-up), the torch-independent reference ticked between
    calls (``decode_ms_p50_norm``): time to first token per call, decode steps pooled over
    calls in steady state; the row gets rounds, TTFT, decode p50 / p95, per-position medians
    and peak memory, and pytest-benchmark the steady steps. Returns the calls' ``Generated``."""
    one_call = first.ttft_s + sum(first.step_s)
    least = budget.min_rounds if min_rounds is None else min_rounds
    rounds = int(min(budget.max_rounds, max(least, budget.measure_s / max(one_call, 1e-6))))
    reset_peak_memory(device)
    ref, runs = Reference(), []
    for _ in range(rounds):
        ref.tick()
        runs.append(call())
    ref.record(row)
    row.update(peak_memory_columns(device))
    steady = [s for r in runs for s in r.step_s[STEADY_AFTER:]] or [s for r in runs for s in r.step_s]
    if benchmark is not None:
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        record_step_samples(benchmark, steady)  # the judged samples: steady decode steps
    ms = [x * 1e3 for x in steady]
    row.update(rounds=rounds, ttft_ms=statistics.median(r.ttft_s for r in runs) * 1e3,
               ttft_ms_p90=percentile([r.ttft_s * 1e3 for r in runs], 90), decode_ms_p50=statistics.median(ms),
               decode_ms_p95=percentile(ms, 95),
               decode_ms_by_position="/".join(f"{statistics.median(r.step_s[k] for r in runs) * 1e3:.3g}"
                                               for k in range(len(first.step_s))))
    return runs
