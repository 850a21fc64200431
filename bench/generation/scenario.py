"""Generation rows: one decoder x mode x cache x attention implementation x batch, correctness
first (greedy tokens of every sequence of a left-padded batch against eager's tokens for that
sequence alone; the logits of the first token and of every decode step where the paths agree
against an fp64 copy, tensor by tensor; a quantized mode by its quality line instead, a
speculative one by its tokens), then ``generate()``
timed per token: time to first token, decode latency p50/p95 in steady state, tokens/s, KV
cache bytes per token against the analytic size -> generation.csv."""
from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from bench.core.compiled import dynamo_counts
from bench.core.face import one_of, run_as_row
from bench.core.hardware import DTYPES, PRECISIONS, float8_capable
from bench.core.timing import budget_for
from bench.generation import quantized as Q
from bench.generation import speculative as S
from bench.generation.isolation import crash_guard
from bench.models import decoders as zoo
from bench.models import decoding as D
from bench.models.heldout import heldout_ids, judge_perplexity, quality
from bench.models.token_parity import judge_logits, judge_tokens

MODES = ("eager", "compile", "compile_cudagraphs", "export", "continuous_batching", *Q.SCHEMES, *S.MODES)
CACHES = ("dynamic", "static", "paged")
ATTENTION = ("sdpa", "eager", "flex_attention")


@dataclasses.dataclass(frozen=True)
class Config:
    """One generation case (``model`` "hf": the ``--hf-model`` causal LM)."""

    model: str = "llama"
    mode: str = "eager"
    cache: str = "dynamic"
    attention: str = "sdpa"
    device: str = "cpu"
    dtype: str = "fp32"
    batch_size: int = 1
    prompt_len: int | None = None  # None: the profile's

    def __post_init__(self):
        one_of("model", self.model, zoo.DECODERS + ("hf",))
        if self.batch_size < 1 or self.prompt_len is not None and self.prompt_len < 2:
            raise ValueError(f"batch_size must be >= 1 and prompt_len >= 2, got {self.batch_size}, {self.prompt_len}")
        one_of("mode", self.mode, MODES)
        one_of("cache", self.cache, CACHES)
        one_of("attention", self.attention, ATTENTION)
        one_of("dtype", self.dtype, PRECISIONS)
        if (self.mode == "continuous_batching") != (self.cache == "paged"):
            raise ValueError(f"mode={self.mode!r} with cache={self.cache!r}: continuous batching runs on its paged "
                             "cache, and the paged cache only under continuous batching")
        if self.mode in ("compile", "compile_cudagraphs", "export") and self.cache != "static":
            raise ValueError(f"mode={self.mode!r} needs cache='static' (a compiled or exported decoder has fixed "
                             "shapes); valid with cache='dynamic': mode='eager'")
        if self.mode == "export" and self.batch_size != 1:
            raise ValueError("mode='export' runs batch_size=1 (transformers' ExecuTorch recipe)")
        if self.mode in Q.SCHEMES + S.MODES and self.cache != "dynamic":
            raise ValueError(f"mode={self.mode!r} runs on the dynamic cache; valid cache: 'dynamic'")
        if self.mode in S.MODES and self.batch_size != 1:
            raise ValueError(f"mode={self.mode!r} runs batch_size=1 (transformers' speculative decoding)")


def cases(session) -> list:
    import pytest

    from bench.core.profiles import case, lacks

    p, out = session.profile, []
    models = zoo.DECODERS + (("hf",) if session.settings.hf_model else ())
    for model in models:
        attention = zoo.hf_attention(session.settings.hf_model) if model == "hf" else "sdpa"
        for device in session.devices:
            dtype = "fp32" if device == "cpu" else "bf16"
            variants = [("eager", "dynamic", attention, bs) for bs in p.gen_batch_sizes]
            if model == "llama" and p.gen_graphs:  # prefill latency by prompt length: a 4x longer prompt
                variants.append(("eager", "dynamic", "sdpa", 1, 4 * p.gen_prompt_len))
            variants.append(("eager", "static", attention, p.gen_batch_sizes[-1]))
            if model == "llama":
                variants += [("eager", "dynamic", "eager", p.gen_batch_sizes[-1]),
                             ("eager", "dynamic", "flex_attention", p.gen_batch_sizes[-1]),
                             ("compile", "static", "sdpa", p.gen_batch_sizes[-1]),
                             ("compile_cudagraphs", "static", "sdpa", p.gen_batch_sizes[-1]),
                             ("export", "static", "sdpa", 1),
                             ("continuous_batching", "paged", "sdpa", max(p.gen_batch_sizes))]
            if model in ("llama", "hf"):
                variants += [(q, "dynamic", attention, p.gen_batch_sizes[-1]) for q in Q.SCHEMES]
                variants += [(m, "dynamic", attention, 1) for m in S.MODES]
            for mode, cache, attn, bs, *prompt in variants:
                marks = []
                # what the machine lacks first: a profile that would run the row cannot run it here
                if mode == "compile_cudagraphs" and device == "cpu":
                    marks.append(lacks("CUDA graphs (mode reduce-overhead) need a CUDA device"))
                elif mode == "float8_dynamic" and not float8_capable(device):
                    marks.append(lacks("float8 matmuls (torch._scaled_mm) need a CUDA GPU of compute capability "
                                       "8.9 or later"))
                elif (mode != "eager" or attn == "flex_attention") and not p.gen_graphs:
                    marks.append(pytest.mark.skip(reason=f"generation {mode if attn != 'flex_attention' else attn} "
                                                         f"rows run in the standard and full profiles "
                                                         f"({_cost_on_cpu(mode, attn)}; this is {p.name})"))
                out.append(case("generation", marks=marks, model=model, mode=mode, cache=cache, attention=attn,
                                device=device, dtype=dtype, batch_size=bs, prompt_len=prompt[0] if prompt else None))
    return out


def _cost_on_cpu(mode: str, attention: str) -> str:
    """Why a mode waits for the standard profile: what it costs on a CPU."""
    if mode == "continuous_batching":
        return "its manager takes about 10 s to start on CPU"
    if mode in ("compile", "export") or attention == "flex_attention":  # flex_attention: Inductor, even eager
        return "10-30 s per graph on CPU"
    return "a quantized model or a second decoding pass: seconds a row on CPU"


def decoder_size(session, device: str) -> str:
    return zoo.size_for(session.profile.gen_size, device)


def _build(c: dict, session, attn: str | None = None, dtype: str | None = None, **load):
    return zoo.build(c["model"], decoder_size(session, c["device"]), attn or c["attention"], c["device"],
                     DTYPES[dtype or c["dtype"]], session.settings.hf_model, **load)


def _reference(c: dict, session, ids, mask, lengths) -> dict:
    """Eager's greedy tokens and logits for each sequence alone (no padding, eager attention,
    dynamic cache, the case's dtype), and the fp64 copy's logits at every step of eager's
    tokens: built once per decoder, device, dtype and batch of prompts."""
    def make():
        model, _ = _build(c, session, attn="eager")
        p = session.profile
        runs = [D.generate(model, ids[i:i + 1, -n:], mask[i:i + 1, -n:], p.gen_new_tokens, device=c["device"])
                for i, n in enumerate(lengths)]
        text = heldout_ids(model.config.vocab_size, session.settings.hf_model) if c["model"] == "hf" else None
        ppl = quality(model, text).perplexity if text is not None else None  # a checkpoint's quality line
        gold, why = _fp64_logits(model, ids, lengths, [r.tokens[0] for r in runs])
        del model
        return {"tokens": [r.tokens[0] for r in runs], "logits": [[x[0] for x in r.logits] for r in runs],
                "gold": gold, "no_gold": why, "text": text, "perplexity": ppl}

    key = ("generation_reference", c["model"], c["device"], c["dtype"], tuple(lengths), ids.shape[1],
           hash(tuple(ids.flatten().tolist())))
    return session.shared(key, make, slot="generation_reference")


def _fp64_logits(model, ids, lengths, tokens) -> tuple[list | None, str | None]:
    """The fp64 copy's logits per sequence at each generated position (the prompt followed by
    eager's tokens, one forward: (new tokens, vocab)), or None and why it cannot run."""
    try:
        gold_model = model.to(torch.float64)
        if hasattr(gold_model, "set_experts_implementation") and getattr(gold_model.config, "num_local_experts", 0):
            gold_model.set_experts_implementation("eager")  # grouped_mm kernels refuse float64
        with torch.no_grad():
            return [gold_model(torch.cat([ids[i, -n:], tokens[i][:-1].to(ids.device)])[None]).logits[0, n - 1:].cpu()
                    for i, n in enumerate(lengths)], None
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        return None, f"no fp64 reference: {type(exc).__name__}: {str(exc)[:150]}"


def _once(model, c: dict, session, ids, mask, exported=None) -> D.Generated:
    new = session.profile.gen_new_tokens
    if c["mode"] == "export":
        return D.generate_exported(exported, ids, new, c["device"])
    backend = {"compile": session.settings.compile_backend, "compile_cudagraphs": "inductor"}.get(c["mode"])
    mode = "reduce-overhead" if c["mode"] == "compile_cudagraphs" else "default"  # reduce-overhead: CUDA graphs
    return D.generate(model, ids, mask, new, c["cache"], backend, c["device"], compile_mode=mode)


# Seconds a row takes on the reference 2-core CPU at the standard profile's decoder (docs/methods.md, "Time
# plan"): build, eager's reference for each sequence, the checked first call, then generate()
# repeated within the budget; a graph mode adds its build.
_ROW_S = {"eager": 5.0, "compile": 14.0, "compile_cudagraphs": 14.0, "export": 7.0, "continuous_batching": 14.0,
          "assisted": 8.0, "prompt_lookup": 5.0, **{q: 6.0 for q in Q.SCHEMES}}


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan)."""
    from bench.core.plan import Cost

    cost = _ROW_S.get(case["mode"], 10.0) * (0.1 if profile.gen_size == "smoke" else 1.0)  # smoke: a tiny decoder
    if case["attention"] == "flex_attention":
        cost += 15.0  # Inductor builds its mask and attention kernels, first in a child process
    return Cost(fixed_s=cost, essential=case["mode"] == "eager" and case["attention"] == "sdpa"
                and case["cache"] == "dynamic" and case["model"] == "llama")


def first_call(payload: dict) -> dict:
    """Build the case's decoder and generate once (in a child: bench.core.isolate)."""
    from bench.core.profiles import settings
    from bench.core.session import Session

    session = Session(settings(payload["profile"], [payload["case"]["device"]], payload["hf_model"]))
    c = payload["case"]
    model, _ = _build(c, session)
    ids, mask, _ = D.prompts(c["batch_size"], c.get("prompt_len") or session.profile.gen_prompt_len,
                             model.config.vocab_size, c["device"])
    _once(model, c, session, ids, mask)
    return {"ok": True}


def run_case(case: dict, benchmark, row, session) -> None:
    c, p = case, session.profile
    if c["model"] == "hf":  # the report names the model as the user gave it (the case id says "hf")
        row["model"] = session.settings.hf_model
    crash_guard(c, session, row)
    try:
        model, weights = _build(c, session)
    except (ValueError, ImportError, NotImplementedError) as exc:  # e.g. an attention this build lacks
        row.end("unsupported", f"{type(exc).__name__}: {str(exc)[:300]}")
    vocab = model.config.vocab_size
    prompt_len = c.get("prompt_len") or p.gen_prompt_len
    ids, mask, lengths = D.prompts(c["batch_size"], prompt_len, vocab, c["device"])
    row.update(weights=weights, prompt_len=prompt_len, new_tokens=p.gen_new_tokens,
               decoder_size=decoder_size(session, c["device"]) if c["model"] != "hf" else None,
               params_m=sum(x.numel() for x in model.parameters()) / 1e6, prompt_lengths="/".join(map(str, lengths)))
    if c["mode"] == "prompt_lookup":  # a prompt that quotes itself, what prompt lookup is for
        ids = S.quoting(ids)
    ref = _reference(c, session, ids, mask, lengths)
    if c["mode"] == "continuous_batching":  # requests of different lengths, each unpadded
        from bench.generation.serving import run_serving

        prompts = [ids[i, -n:].tolist() for i, n in enumerate(lengths)]
        return run_serving(model, c, session, prompts, ref,
                           lambda t, r, lg: judge_tokens(t, r, lg, DTYPES[c["dtype"]], device=c["device"]),
                           benchmark, row)
    if c["mode"] in S.MODES:
        return S.run_speculative(model, c, session, ids, ref, lambda t, r, lg: judge_tokens(
            t, r, lg, DTYPES[c["dtype"]], device=c["device"]), benchmark, row)
    if c["mode"] in Q.SCHEMES:
        model = Q.quantized_model(model, c, session, row, load=lambda **kw: _build(c, session, **kw)[0])
    exported = None
    counts0 = dynamo_counts()
    t0 = time.perf_counter()
    if c["mode"] == "export":
        exported = D.export_decoder(model, prompt_len + p.gen_new_tokens)
    first = _once(model, c, session, ids, mask, exported)
    row["build_s"] = time.perf_counter() - t0 if c["mode"] != "eager" else None
    counts1 = dynamo_counts()
    if c["mode"].startswith("compile") and counts1["captured"] == counts0["captured"]:
        row.check(False, "torch.compile captured no graph: generate() ran eager code", status="error")
    _judge(first, ref, c, row, exact=c["mode"] not in Q.SCHEMES)
    if ref["perplexity"] is not None and c["mode"] not in Q.SCHEMES:  # --hf-model: its quality line per mode
        judge_perplexity(row, model, ref["text"], ref["perplexity"], c["dtype"], c["mode"])
    _time(model, c, session, ids, mask, exported, first, benchmark, row)
    if c["mode"].startswith("compile"):  # recompiles over prompt lengths: a shorter prompt
        short = max(2, prompt_len // 2)
        before = dynamo_counts()["ok"]
        _once(model, c, session, ids[:, -short:], mask[:, -short:], exported)
        row.update(graphs_compiled=counts1["ok"] - counts0["ok"], recompiles=dynamo_counts()["ok"] - before)
    formula = zoo.kv_bytes_formula(model, DTYPES[c["dtype"]])
    measured = D.kv_bytes_per_token(first.cache, c["batch_size"])
    row.update(kv_cache_bytes_per_token=measured, kv_cache_bytes_formula=formula,
               kv_cache_bytes_ratio=measured / formula if measured else None)
    if c["mode"] == "eager" and c["attention"] == "sdpa":
        row["sdpa_kernel"] = D.sdpa_kernels(model, ids, mask)


def _judge(first, ref, c: dict, row, exact: bool) -> None:
    """Tokens against eager's, then the logits of the first token and of every decode step up
    to the first differing token against the fp64 copy: transformers compiles the decode steps
    only, so for compile rows the steps are the compiled graph's own numbers. A quantized mode
    (``exact`` False) records how far its tokens follow eager's; its quality line judged it."""
    n = len(ref["tokens"])
    tokens = judge_tokens(first.tokens, ref["tokens"], ref["logits"], DTYPES[c["dtype"]], c["device"])
    agree = tokens.first_diff if tokens.first_diff is not None else len(first.logits)
    row["decode_logits_max_abs_diff"] = max((float((first.logits[k][i] - ref["logits"][i][k]).abs().max())
                                             for i in range(n) for k in range(1, agree)), default=None)
    row.update(token_parity="tie" if tokens.tie else "equal" if tokens.ok else "differs",
               first_diff_pos=tokens.first_diff, logit_margin=tokens.margin, parity_note=tokens.text or None)
    if not exact:
        row["token_agreement"] = float((first.tokens == torch.stack(ref["tokens"])).float().mean())
        return
    row.check(tokens.ok, f"tokens differ from eager's: {tokens.text}")
    if ref["gold"] is None:
        row["logits_vs_fp64"] = ref["no_gold"]  # the tokens were still compared with eager's
        return
    # per sequence: the first token's logits, and its decode steps stacked into one tensor (one
    # rule per step would put 32 x batch tensors through it, and its tail with them)
    names, gold, eager, mode = [], [], [], []
    for i in range(n):
        for what, ks in (("first token", range(1)), (f"decode steps 1-{agree - 1}", range(1, agree))):
            if len(ks):
                names.append(f"sequence {i} {what} logits")
                gold.append(torch.stack([ref["gold"][i][k] for k in ks]))
                eager.append(torch.stack([ref["logits"][i][k] for k in ks]))
                mode.append(torch.stack([first.logits[k][i] for k in ks]))
    within, note = judge_logits(names, gold, eager, mode, c["dtype"])
    row["logits_vs_fp64"] = note
    row.check(within, f"logits beyond the fp64 rule: {note}")


def _time(model, c, session, ids, mask, exported, first, benchmark, row) -> None:
    """generate() within the case's budget (``decoding.time_calls``), and the throughputs."""
    budget = budget_for(session.profile.budget, c["device"], c["dtype"], row)
    runs = D.time_calls(lambda: _once(model, c, session, ids, mask, exported), first, budget, c["device"], benchmark,
                        row)
    row.update(decode_tokens_per_s=c["batch_size"] / (row["decode_ms_p50"] / 1e3),
               tokens_per_s=c["batch_size"] * session.profile.gen_new_tokens
               / statistics.median(r.ttft_s + sum(r.step_s) for r in runs))


def run(config: Config, session=None) -> dict:
    """The case's generation.csv row, without pytest."""
    return run_as_row("generation", dataclasses.asdict(config), run_case, session)
