"""Throughput under load: a batch of requests with different prompt lengths served by
transformers' continuous batching (``generate_batch``: a paged KV cache, requests scheduled
as they fit) against static batching (one left-padded ``generate()`` call, the suite's
``eager`` / ``dynamic`` row at the same batch size). Every request's tokens are checked
against one-at-a-time greedy decoding before anything is timed."""
from __future__ import annotations

import statistics
import time

import torch

from bench.core.hardware import peak_memory_columns, reset_peak_memory, synchronize
from bench.core.timing import budget_for, percentile, record_step_samples


def serve(model, prompts: list[list[int]], new_tokens: int, device: str, persistent: bool = True) -> dict:
    """One ``generate_batch`` call: tokens (requests, new) in request order, per-request
    time to first token and latency (from the request's creation, transformers' own
    ``perf_counter`` stamps), the decode steps between token stamps, and the wall time."""
    from transformers import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=-1, pad_token_id=0)
    synchronize(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        # the manager (scheduler thread, paged cache) kept between calls, as a server keeps it:
        # building it takes seconds on CPU and is the first call's cost, not each request's
        out = model.generate_batch(inputs=prompts, generation_config=cfg, record_timestamps=True, warmup=False,
                                   persistent_manager=persistent)
    wall = time.perf_counter() - t0
    results = [out[k] for k in sorted(out, key=lambda k: int(str(k).rsplit("_", 1)[-1]))]
    # generate_batch returns what finished when its loop fails: a lost or short request is an error
    short = [i for i, r in enumerate(results) if getattr(r, "error", None) or len(r.generated_tokens) < new_tokens]
    if len(results) != len(prompts) or short:
        errors = "; ".join(str(results[i].error)[:100] for i in short if getattr(results[i], "error", None))
        raise RuntimeError(f"continuous batching returned {len(results)} of {len(prompts)} requests, "
                           f"{len(short)} short or failed{': ' + errors if errors else ''}")
    tokens = torch.tensor([list(r.generated_tokens)[:new_tokens] for r in results])
    ttft, latency, steps = [], [], []
    for r in results:
        stamps = list(r.timestamps or [])
        if stamps:
            ttft.append(stamps[0] - r.created_time)
            latency.append(stamps[-1] - r.created_time)
            steps += [b - a for a, b in zip(stamps, stamps[1:])]
    return {"tokens": tokens, "ttft_s": ttft, "latency_s": latency, "step_s": steps, "wall_s": wall}


def run_serving(model, c: dict, session, prompts, ref, judge, benchmark, row) -> None:
    """Check the served tokens against each request alone, then serve again within the case's
    budget: tokens/s of the whole batch, request latency and time to first token percentiles."""
    try:
        _serve_and_time(model, c, session, prompts, ref, judge, benchmark, row)
    finally:  # the manager and its paged cache go, whatever the row's outcome
        if hasattr(model, "destroy_cached_continuous_batching_manager"):
            model.destroy_cached_continuous_batching_manager()


def _serve_and_time(model, c: dict, session, prompts, ref, judge, benchmark, row) -> None:
    new = session.profile.gen_new_tokens
    first = serve(model, prompts, new, c["device"])
    verdict = judge(first["tokens"], ref["tokens"], ref["logits"])
    row.update(token_parity="tie" if verdict.tie else "equal" if verdict.ok else "differs",
               first_diff_pos=verdict.first_diff, logit_margin=verdict.margin, parity_note=verdict.text or None,
               requests=len(prompts))
    row.check(verdict.ok, f"served tokens differ from each request decoded alone: {verdict.text}")
    budget = budget_for(session.profile.budget, c["device"], c["dtype"], row)
    rounds = int(min(budget.max_rounds, max(budget.min_rounds, budget.measure_s / max(first["wall_s"], 1e-6))))
    reset_peak_memory(c["device"])
    runs = [serve(model, prompts, new, c["device"]) for _ in range(rounds)]
    row.update(peak_memory_columns(c["device"]))
    steps = [s for r in runs for s in r["step_s"]]
    if benchmark is not None:
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        record_step_samples(benchmark, steps)
    lat = [x * 1e3 for r in runs for x in r["latency_s"]]
    ttft = [x * 1e3 for r in runs for x in r["ttft_s"]]
    ms = [s * 1e3 for s in steps]
    row.update(rounds=rounds, build_s=first["wall_s"], ttft_ms=statistics.median(ttft),
               ttft_ms_p90=percentile(ttft, 90),
               request_ms_p50=statistics.median(lat), request_ms_p95=percentile(lat, 95),
               decode_ms_p50=statistics.median(ms), decode_ms_p95=percentile(ms, 95),
               tokens_per_s=len(prompts) * new / statistics.median(r["wall_s"] for r in runs))
