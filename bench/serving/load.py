"""Requests under load: a seeded workload (prompt and output lengths drawn uniformly from
stated ranges, arrivals all at once or as a Poisson process), served in real time by
transformers' continuous batching or by a static-batching loop over ``generate()``, and the
per-request latencies a serving benchmark reports.

The definitions follow the serving benchmarks people already read: time to first token (TTFT)
from the request's arrival, time per output token (TPOT = (end to end - TTFT) / (output tokens
- 1)), inter-token latency (ITL, every gap between two tokens), as vLLM's ``benchmarks/
benchmark_serving.py`` computes them; Poisson arrivals at ``rate`` (``--request-rate``,
``--burstiness 1``) and a burst (``--request-rate inf``); goodput as DistServe defines it
(Zhong et al., OSDI 2024): completed requests per second that meet both the TTFT and the TPOT
target. Latencies run from the request's *scheduled* arrival, so a client or server that falls
behind the arrival process is charged for it.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import time

import torch

from bench.core.hardware import synchronize
from bench.core.timing import percentile


@dataclasses.dataclass(frozen=True)
class Request:
    prompt: tuple[int, ...]
    new_tokens: int
    arrival_s: float  # after the trace's start


@dataclasses.dataclass
class Served:
    tokens: list[int]
    arrival: float        # perf_counter of the scheduled arrival
    stamps: list[float]   # perf_counter when each output token was ready
    error: str | None = None


def workload(n: int, prompt_len: int, new_tokens: int, vocab: int, rate: float | None, seed: int = 0) -> list[Request]:
    """``n`` requests: prompt lengths uniform in [prompt_len/4, prompt_len], output lengths in
    [new_tokens/4, new_tokens] (as vLLM's random data set draws lengths uniformly in a range),
    token ids uniform in [1, vocab). ``rate`` None: every request at t=0 (a burst); else exponential gaps
    of mean 1/rate. The prompts depend on ``seed`` only, not on the rate, so every rate serves
    the same requests (and one reference checks them all)."""
    if n < 1 or prompt_len < 2 or new_tokens < 1:
        raise ValueError(f"a workload needs n >= 1, prompt_len >= 2, new_tokens >= 1; got {n}, {prompt_len}, "
                         f"{new_tokens}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 requests/s (None: a burst), got {rate!r}")
    gen = torch.Generator().manual_seed(seed)
    lo_p, lo_n = max(2, prompt_len // 4), max(1, new_tokens // 4)
    plens = torch.randint(lo_p, prompt_len + 1, (n,), generator=gen).tolist()
    nlens = torch.randint(lo_n, new_tokens + 1, (n,), generator=gen).tolist()
    prompts = [tuple(torch.randint(1, vocab, (p,), generator=gen).tolist()) for p in plens]
    if rate is None:
        arrivals = [0.0] * n
    else:
        clock = torch.Generator().manual_seed(seed + 1)
        gaps = torch.empty(n).exponential_(rate, generator=clock).tolist()
        arrivals = [0.0, *itertools.accumulate(gaps[1:])]
    return [Request(p, k, a) for p, k, a in zip(prompts, nlens, arrivals)]


def _cb_config(requests: list[Request], device: str):
    """The paged cache sized to the workload (left to transformers, it claims most of the free
    memory, which on a CPU means seconds of allocation before the first request)."""
    from transformers import ContinuousBatchingConfig

    page = 32
    blocks = sum(math.ceil((len(r.prompt) + r.new_tokens) / page) for r in requests) + 2 * len(requests) + 4
    longest = max(len(r.prompt) for r in requests)
    # transformers 5.17 names a block's tokens block_size; later releases page_size
    fields = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    size = "page_size" if "page_size" in fields else "block_size"
    # no switch to FlashAttention on a bf16 GPU: the static rows and the reference run SDPA, and the
    # comparison is of schedulers, not kernels
    extra = {"auto_switch_to_flash": False} if "auto_switch_to_flash" in fields else {}
    return ContinuousBatchingConfig(**{size: page}, **extra, num_blocks=blocks,
                                    max_batch_tokens=max(256, longest + len(requests)),
                                    max_requests_per_batch=len(requests), allow_block_sharing=False,
                                    use_cuda_graph=None if str(device).startswith("cuda") else False)


def serve_continuous(model, requests: list[Request], device: str, timeout_s: float = 300.0,
                     warmup: list[Request] | None = None, meter=None) -> list[Served]:
    """Serve the trace with transformers' continuous batching (a scheduler thread, a paged KV
    cache, requests joining the running batch as they arrive): each request is submitted at
    its arrival time and its tokens stamped by transformers as they are produced. A request
    the manager refused, failed or did not finish within ``timeout_s`` carries an error."""
    from transformers import GenerationConfig

    cfg = GenerationConfig(do_sample=False, eos_token_id=-1, pad_token_id=0,
                           max_new_tokens=max(r.new_tokens for r in requests))
    manager = model.init_continuous_batching(generation_config=cfg,
                                             continuous_batching_config=_cb_config(requests + (warmup or []), device))
    try:
        manager.start()
        if warmup:  # first calls (allocation, kernels) before the trace, as a running server has had them
            failed = [s.error for s in _trace(manager, warmup, timeout_s, prefix="w") if s.error]
            if failed:
                raise RuntimeError(f"continuous batching failed its warm-up requests: {failed[0]}")
        if meter is not None:
            meter.start()
        served = _trace(manager, requests, timeout_s)
        if meter is not None:
            meter.stop()
        return served
    finally:
        # hard stop: whatever is still pending (a lost request) is dropped, not run to its end; a
        # scheduler thread that does not stop is this row's error, not a run that never returns
        manager.stop(block=True, timeout=10, hard_stop=True)
        if manager.is_running():
            raise RuntimeError("the continuous-batching scheduler thread did not stop within 10 s")
        manager.destroy()


def _trace(manager, requests: list[Request], timeout_s: float, prefix: str = "r") -> list[Served]:
    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    done: dict[int, object] = {}
    errors: dict[int, str] = {}
    submitted = 0
    t0 = time.perf_counter()
    while len(done) + len(errors) < len(requests):
        now = time.perf_counter() - t0
        while submitted < len(order) and requests[order[submitted]].arrival_s <= now:
            i = order[submitted]
            rid = manager.add_request(list(requests[i].prompt), request_id=f"{prefix}{i}",
                                      max_new_tokens=requests[i].new_tokens, record_timestamps=True, eos_token_id=-1)
            if rid is None:
                errors[i] = "the scheduler refused the request (not accepting new requests)"
            submitted += 1
        if not manager.is_running():  # the scheduler thread died: its error is every pending request's
            fatal = getattr(getattr(manager, "background_thread_status", None), "fatal_error", None)
            errors.update({i: f"the scheduler stopped: {str(fatal)[:150] if fatal else 'no error recorded'}"
                           for i in range(len(requests)) if i not in done and i not in errors})
            break
        now = time.perf_counter() - t0  # submitting may have taken time: wait from now
        if now > timeout_s:
            break
        wait = requests[order[submitted]].arrival_s - now if submitted < len(order) else 0.2
        out = manager.get_result(timeout=max(wait, 1e-4))
        if out is not None and out.is_finished() and str(out.request_id).startswith(prefix):
            i = int(str(out.request_id)[len(prefix):])
            if getattr(out, "error", None):
                errors[i] = f"the request failed: {str(out.error)[:150]}"
            else:
                done[i] = out
    served = []
    for i, r in enumerate(requests):
        arrival = t0 + r.arrival_s
        if i in done:
            out = done[i]
            served.append(Served(list(out.generated_tokens), arrival, list(out.timestamps or [])))
        else:
            served.append(Served([], arrival, [], errors.get(i, f"lost: not finished after {timeout_s:.0f} s")))
    return served


def serve_static(model, requests: list[Request], device: str, max_batch: int,
                 warmup: list[Request] | None = None, meter=None) -> list[Served]:
    """Serve the trace the pre-continuous-batching way: whenever the server is idle, the
    requests that have arrived (first come first served, at most ``max_batch``) become one
    left-padded ``generate()`` call that runs to the longest output among them; requests that
    arrive meanwhile wait for the next call."""
    if warmup:
        _static_loop(model, warmup, device, max_batch)
    if meter is not None:
        meter.start()
    served = _static_loop(model, requests, device, max_batch)
    if meter is not None:
        meter.stop()
    return served


def _static_loop(model, requests: list[Request], device: str, max_batch: int) -> list[Served]:
    from transformers import LogitsProcessorList

    from bench.models.decoding import step_clock

    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    served: dict[int, Served] = {}
    t0 = time.perf_counter()
    nxt = 0
    while nxt < len(order):
        now = time.perf_counter() - t0
        if requests[order[nxt]].arrival_s > now:
            time.sleep(requests[order[nxt]].arrival_s - now)
            continue
        batch = []
        while nxt < len(order) and len(batch) < max_batch and requests[order[nxt]].arrival_s <= now:
            batch.append(order[nxt])
            nxt += 1
        width = max(len(requests[i].prompt) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(batch):
            p = requests[i].prompt
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        longest = max(requests[i].new_tokens for i in batch)
        stamps: list[float] = []
        synchronize(device)
        with torch.no_grad():
            out = model.generate(ids.to(device), attention_mask=mask.to(device), max_new_tokens=longest,
                                 min_new_tokens=longest, do_sample=False, disable_compile=True,
                                 logits_processor=LogitsProcessorList([step_clock(device, stamps)]))
        new = out[:, width:].cpu()
        for row, i in enumerate(batch):
            k = requests[i].new_tokens
            served[i] = Served(new[row, :k].tolist(), t0 + requests[i].arrival_s, stamps[:k])
    return [served[i] for i in range(len(requests))]


def summarize(served: list[Served], requests: list[Request], ttft_target_ms: float, tpot_target_ms: float) -> dict:
    """Per-run figures: p50 / p90 / p99 of TTFT, TPOT, ITL and end to end (ms), requests/s and
    output tokens/s over the trace (first arrival to last token), and goodput: requests/s that
    met both targets. Requests with an error count as served by nobody."""
    ok = [(s, r) for s, r in zip(served, requests) if s.error is None and s.stamps]
    start = min(s.arrival for s in served)
    end = max((s.stamps[-1] for s, _ in ok), default=start)
    span = max(end - start, 1e-9)
    ttft = [(s.stamps[0] - s.arrival) * 1e3 for s, _ in ok]
    e2e = [(s.stamps[-1] - s.arrival) * 1e3 for s, _ in ok]
    tpot = [(s.stamps[-1] - s.stamps[0]) * 1e3 / (len(s.stamps) - 1) for s, _ in ok if len(s.stamps) > 1]
    itl = [(b - a) * 1e3 for s, _ in ok for a, b in zip(s.stamps, s.stamps[1:])]
    good = sum(1 for s, _ in ok if (s.stamps[0] - s.arrival) * 1e3 <= ttft_target_ms
               and (len(s.stamps) < 2 or (s.stamps[-1] - s.stamps[0]) * 1e3 / (len(s.stamps) - 1) <= tpot_target_ms))
    out = {"requests": len(requests), "completed": len(ok), "duration_s": span,
           "requests_per_s": len(ok) / span, "output_tokens_per_s": sum(len(s.stamps) for s, _ in ok) / span,
           "goodput": good / span, "goodput_fraction": good / len(requests),
           "ttft_target_ms": ttft_target_ms, "tpot_target_ms": tpot_target_ms}
    for name, xs in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
        for q in (50, 90, 99):
            out[f"{name}_ms_p{q}"] = (statistics.median(xs) if q == 50 else percentile(xs, q)) if xs else None
    return out
