"""Serving rows: the zoo's Llama (or ``--hf-model``) under load, and a sliding-window decoder at
long context -> serving.csv. Every request's greedy tokens are checked against that request
decoded alone by eager before any latency is reported (``bench.models.token_parity``).

Load: one seeded set of requests (``bench.serving.load.workload``) served as a burst (all at
t=0: the capacity) and as Poisson arrivals at fractions of the continuous-batching burst
capacity measured in this run, by transformers' continuous batching and by static batching.
The rows of a sweep key on the fraction, so two runs compare the same relative load; the rate
itself is a column. Targets: MLPerf Inference v5.0's interactive LLM limits (TTFT 450 ms, TPOT
40 ms; mlcommons.org/2025/04/llm-inference-v5), judged at p90.

Long context: a Mistral-block decoder whose sliding window is shorter than the longer prompts,
so the window binds; TTFT, decode ms per token, the KV bytes the cache really holds against
the window's formula (over-allocation is a ``mismatch``), peak memory.
"""
from __future__ import annotations

import dataclasses

import torch

from bench.core.energy import Meter
from bench.core.face import one_of, run_as_row
from bench.core.hardware import DTYPES, PRECISIONS, peak_memory_columns, reset_peak_memory
from bench.core.timing import record_step_samples
from bench.models import decoders as zoo
from bench.models import decoding as D
from bench.models.token_parity import judge_tokens
from bench.serving import load as L
from bench.serving.plan import CONTEXTS, PLANS, TPOT_TARGET_MS, TTFT_TARGET_MS
from bench.serving.plan import model as _model
from bench.serving.plan import size as _size
from bench.serving.search import meets, search

SCENARIOS = ("burst", "poisson", "capacity", "long_context")
SCHEDULERS = ("continuous", "static", "single")
CACHES = ("paged", "dynamic", "static")
@dataclasses.dataclass(frozen=True)
class Config:
    """One serving case. ``load``: Poisson rate as a fraction of the burst capacity (poisson
    rows only); ``prompt_len``: the long-context prompt (long_context rows only)."""

    model: str = "llama"
    scenario: str = "burst"
    scheduler: str = "continuous"
    load: float | None = None
    cache: str = "paged"
    prompt_len: int | None = None
    device: str = "cpu"
    dtype: str = "fp32"

    def __post_init__(self):
        one_of("model", self.model, ("llama", "mistral", "hf"))
        one_of("scenario", self.scenario, SCENARIOS)
        one_of("scheduler", self.scheduler, SCHEDULERS)
        one_of("cache", self.cache, CACHES)
        one_of("dtype", self.dtype, PRECISIONS)
        if (self.scenario == "poisson") != (self.load is not None) or self.load is not None and not self.load > 0:
            raise ValueError(f"load={self.load!r} with scenario={self.scenario!r}: poisson rows need a load > 0 "
                             "(a fraction of the burst capacity), other scenarios none")
        if (self.scenario == "long_context") != (self.scheduler == "single"):
            raise ValueError(f"scenario={self.scenario!r} with scheduler={self.scheduler!r}: long_context runs one "
                             "request at a time (scheduler 'single'); burst and poisson: 'continuous' or 'static'")
        if (self.scheduler == "continuous") != (self.cache == "paged"):
            raise ValueError(f"scheduler={self.scheduler!r} with cache={self.cache!r}: continuous batching runs on "
                             "its paged cache, and only it")
        if self.scenario == "long_context" and (self.prompt_len is None or self.prompt_len < 2):
            raise ValueError(f"long_context needs prompt_len >= 2, got {self.prompt_len!r}")


def cases(session) -> list:
    from bench.core.profiles import case

    plan, out = PLANS[session.profile.name], []
    for device in session.devices:
        dtype = "fp32" if device == "cpu" else "bf16"
        for model in ("llama",) + (("hf",) if session.settings.hf_model else ()):
            for scheduler, cache in (("continuous", "paged"), ("static", "dynamic")):
                out.append(case("serving", model=model, scenario="burst", scheduler=scheduler, cache=cache,
                                device=device, dtype=dtype))
                out += [case("serving", model=model, scenario="poisson", scheduler=scheduler, load=f, cache=cache,
                             device=device, dtype=dtype) for f in plan.loads]
                out.append(case("serving", model=model, scenario="capacity", scheduler=scheduler, cache=cache,
                                device=device, dtype=dtype))
        window, lengths, _ = CONTEXTS[_size(session, device)]
        for n in lengths:
            for cache in ("dynamic", "static") if n == lengths[-1] else ("dynamic",):
                out.append(case("serving", model="mistral", scenario="long_context", scheduler="single", cache=cache,
                                prompt_len=n, device=device, dtype=dtype))
    return out


def estimate(case: dict, profile, machine):
    """Seconds on the reference 2-core CPU at the standard profile: the continuous burst builds
    the decoders and decodes eager's reference; a Poisson trace lasts about requests / rate (the
    rate a fraction of ~20 requests/s there); a long prompt's prefill grows with its length."""
    from bench.core.plan import Cost

    seconds = {"burst": 10.0 if case["scheduler"] == "continuous" else 2.5,
               "poisson": 1.0 + 1.2 / (case.get("load") or 1.0),
               "capacity": 22.0 if case["scheduler"] == "continuous" else 12.0,
               "long_context": 1.0 + (case.get("prompt_len") or 0) / 700}[case["scenario"]]
    cost = seconds * (0.1 if profile.gen_size == "smoke" else 1.0)
    # the continuous burst (the capacity every load is a fraction of) and its search for the highest rate
    # meeting the targets keep the question's meaning
    return Cost(fixed_s=cost, essential=case["scenario"] in ("burst", "capacity") and case["scheduler"] == "continuous")


def _requests(c: dict, session, vocab: int, rate: float | None) -> list[L.Request]:
    p, plan = session.profile, PLANS[session.profile.name]
    return L.workload(plan.requests, p.gen_prompt_len, p.gen_new_tokens, vocab, rate)


def _reference(c: dict, session, requests: list[L.Request]) -> dict:
    """Each request decoded alone by eager (eager attention, dynamic cache): tokens and the
    logits of every step, once per decoder and request set."""
    def make():
        model = _model(c, session, attn="eager")
        runs = [D.generate(model, torch.tensor([r.prompt], device=c["device"]),
                           torch.ones(1, len(r.prompt), dtype=torch.long, device=c["device"]), r.new_tokens,
                           device=c["device"]) for r in requests]
        return {"tokens": [g.tokens[0] for g in runs], "logits": [[x[0] for x in g.logits] for g in runs]}

    key = ("serving_reference", c["model"], c["device"], c["dtype"], tuple((r.prompt, r.new_tokens) for r in requests))
    return session.shared(key, make, slot=f"serving_reference_{len(requests)}")  # the sweep's and the search's


def _serve(c: dict, session, model, requests: list[L.Request]) -> tuple[list[L.Served], float | None, str | None]:
    """The trace served by the case's scheduler (after a two-request warm-up): the requests as
    served, and the joules metered over the trace (None, and why, where no meter is readable)."""
    warm = L.workload(2, 8, 2, model.config.vocab_size, None, seed=99)
    meter = Meter(c["device"])
    if c["scheduler"] == "continuous":
        served = L.serve_continuous(model, requests, c["device"], warmup=warm, meter=meter)
    else:
        served = L.serve_static(model, requests, c["device"], PLANS[session.profile.name].static_batch, warmup=warm,
                                meter=meter)
    return served, meter.joules, meter.why


def _capacity(c: dict, session, model, requests: list[L.Request]) -> tuple[tuple, float]:
    """The continuous-batching burst of this decoder and device, served once per run: its
    trace (the burst row's: requests served, joules, why no meter, peak memory) and the
    requests/s the Poisson loads are fractions of."""
    def make():
        reset_peak_memory(c["device"])
        traced = _serve({**c, "scheduler": "continuous"}, session, model, requests)
        traced = (*traced, peak_memory_columns(c["device"]))  # the burst row's peak: of this trace
        return traced, L.summarize(traced[0], requests, TTFT_TARGET_MS, TPOT_TARGET_MS)["requests_per_s"]

    return session.shared(("serving_capacity", c["model"], c["device"], c["dtype"]), make)


def _check(c: dict, served: list[L.Served], ref: dict, row) -> None:
    """Every request served, each with eager's greedy tokens for it alone (the tie rule)."""
    lost = [f"request {i}: {s.error}" for i, s in enumerate(served) if s.error or not s.stamps]
    row.check(not lost, f"{len(lost)} of {len(served)} requests not served: {'; '.join(lost[:3])}", status="error")
    short = [i for i, s in enumerate(served) if len(s.tokens) != len(ref["tokens"][i])]
    row.check(not short, f"requests {short[:5]} returned {[len(served[i].tokens) for i in short[:5]]} tokens, "
                         f"asked {[len(ref['tokens'][i]) for i in short[:5]]}", status="error")
    ties = []
    for i, s in enumerate(served):
        v = judge_tokens(torch.tensor([s.tokens]), [ref["tokens"][i]], [ref["logits"][i]], DTYPES[c["dtype"]],
                         c["device"])
        row.check(v.ok, f"request {i}: served tokens differ from the request decoded alone: {v.text}")
        ties += [f"request {i}: {v.text}"] if v.tie else []
    row.update(token_parity="tie" if ties else "equal", parity_note="; ".join(ties[:2]) or None)


def run_case(case: dict, benchmark, row, session) -> None:
    c = case
    if c["model"] == "hf":
        row["model"] = session.settings.hf_model
    if c["scenario"] == "long_context":
        from bench.serving.context import run_long_context

        return run_long_context(c, session, benchmark, row)
    model = _model(c, session)
    requests = _requests(c, session, model.config.vocab_size, None)
    traced, capacity = _capacity(c, session, model, requests)
    if c["scenario"] == "capacity":
        return _search(c, session, model, capacity, row)
    rate = None
    if c["scenario"] == "poisson":
        rate = c["load"] * capacity
        requests = _requests(c, session, model.config.vocab_size, rate)
    ref = _reference(c, session, requests)
    row.update(requests=len(requests), prompt_len=session.profile.gen_prompt_len,
               new_tokens=session.profile.gen_new_tokens, request_rate=rate, capacity_requests_per_s=capacity,
               weights=zoo.RANDOM_WEIGHTS if c["model"] != "hf" else f"checkpoint {session.settings.hf_model}")
    if not (c["scenario"] == "burst" and c["scheduler"] == "continuous"):  # that trace is the capacity's
        reset_peak_memory(c["device"])
        traced = (*_serve(c, session, model, requests), None)
    served, joules, no_meter, peak = traced
    _check(c, served, ref, row)
    summary = L.summarize(served, requests, TTFT_TARGET_MS, TPOT_TARGET_MS)
    tokens = sum(len(s.stamps) for s in served)
    row.update(summary, **(peak or peak_memory_columns(c["device"])),
               energy_j_per_token=joules / tokens if joules else None, energy_note=no_meter,
               meets_targets=meets(summary))
    if benchmark is not None:
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        record_step_samples(benchmark, [(s.stamps[-1] - s.arrival) for s in served])
        row["samples_of"] = "e2e latency per request"  # not a decode step: no timing metric reads them


def _search(c: dict, session, model, capacity: float, row) -> None:
    """The highest rate meeting the targets (``bench.serving.search``), every trial's requests
    checked against eager's tokens first."""
    p, n = session.profile, 2 * PLANS[session.profile.name].requests

    def trial(rate: float) -> bool:
        requests = L.workload(n, p.gen_prompt_len, p.gen_new_tokens, model.config.vocab_size, rate, seed=1)
        served = _serve(c, session, model, requests)[0]
        _check(c, served, _reference(c, session, requests), row)
        return meets(L.summarize(served, requests, TTFT_TARGET_MS, TPOT_TARGET_MS))

    row.update(search(trial, capacity, n, p.name), requests=n, prompt_len=p.gen_prompt_len,
               new_tokens=p.gen_new_tokens, capacity_requests_per_s=capacity, ttft_target_ms=TTFT_TARGET_MS,
               tpot_target_ms=TPOT_TARGET_MS)


def run(config: Config, session=None) -> dict:
    """The case's serving.csv row, without pytest."""
    return run_as_row("serving", dataclasses.asdict(config), run_case, session)


