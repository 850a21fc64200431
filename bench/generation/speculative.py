"""Speculative decoding through transformers' ``generate()``: assisted generation with a draft
model (``assistant_model``) and prompt-lookup decoding (``prompt_lookup_num_tokens``, candidates
copied from n-grams of the prompt). Greedy speculative decoding must return exactly the target's
greedy tokens (Leviathan et al., 2023, "Fast Inference from Transformers via Speculative
Decoding"): that is checked first, then the acceptance rate and the speed-up over plain decoding.

The draft is the target's own first half of layers with its embeddings, final norm and LM head
(an early-exit draft, as in LayerSkip: Elhoushi et al., 2024), so it shares the vocabulary by
construction, for a zoo decoder and a ``--hf-model`` checkpoint alike.

Counting, from the target's forward calls (a pre-hook on its inputs): each verifying call takes
the last accepted token plus the candidates, so candidates = query length - 1 (the first call:
query length - prompt length); each call yields one token of its own plus the candidates it
accepted, so accepted = new tokens - calls. Acceptance rate = accepted / proposed.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch

from bench.core.hardware import synchronize

MODES = ("assisted", "prompt_lookup")
LOOKUP_TOKENS = 10  # candidates per prompt-lookup step (transformers' docs use 10)


def draft_of(model):
    """The early-exit draft: the target's config with half its layers (at least one), loaded
    with the target's weights for those layers, embeddings and head."""
    from transformers import AutoModelForCausalLM

    cfg = copy.deepcopy(model.config)
    layers = cfg.num_hidden_layers
    cfg.num_hidden_layers = max(1, layers // 2)
    for key in ("layer_types", "mlp_only_layers"):  # per-layer lists some configs carry
        if isinstance(getattr(cfg, key, None), list):
            setattr(cfg, key, getattr(cfg, key)[:cfg.num_hidden_layers])
    draft = AutoModelForCausalLM.from_config(cfg, attn_implementation=model.config._attn_implementation)
    missing, _ = draft.load_state_dict(model.state_dict(), strict=False)
    if missing:
        raise ValueError(f"the early-exit draft lacks weights the target has none of: {missing[:3]}")
    draft.generation_config = copy.deepcopy(model.generation_config)
    return draft.to(device=model.device, dtype=model.dtype).eval(), f"first {cfg.num_hidden_layers} of {layers} layers"


def _queries(model):
    lengths: list[int] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        lengths.append(int(ids.shape[1]) if ids is not None else 0)

    return lengths, model.register_forward_pre_hook(hook, with_kwargs=True)


def speculate(model, ids, new_tokens: int, mode: str, draft=None, device: str = "cpu") -> dict:
    """One greedy speculative ``generate()``: its tokens, wall time and the counts above."""
    kwargs = {"assistant_model": draft} if mode == "assisted" else {"prompt_lookup_num_tokens": LOOKUP_TOKENS}
    lengths, handle = _queries(model)
    try:
        synchronize(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, disable_compile=True, **kwargs)
        synchronize(device)
        wall = time.perf_counter() - t0
    finally:
        handle.remove()
    tokens = out[0, ids.shape[1]:].cpu()
    proposed = (lengths[0] - ids.shape[1] if lengths else 0) + sum(q - 1 for q in lengths[1:])
    accepted = max(0, len(tokens) - len(lengths))
    return {"tokens": tokens, "wall_s": wall, "target_calls": len(lengths), "proposed": proposed,
            "accepted": accepted}


def quoting(ids: torch.Tensor) -> torch.Tensor:
    """The prompt with its second half replaced by its first (a text that quotes itself, as a
    summary or an edit quotes its source): its last n-grams recur earlier in it, so prompt
    lookup has candidates to propose, which the target then accepts or not."""
    half = ids.shape[1] // 2
    return torch.cat([ids[:, :ids.shape[1] - half], ids[:, :half]], dim=1)


def plain(model, ids, new_tokens: int, device: str) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, disable_compile=True)
    synchronize(device)
    return time.perf_counter() - t0


def run_speculative(model, c: dict, session, ids, ref: dict, judge, benchmark, row, draft=None) -> None:
    """Tokens equal to the target's greedy ones first, then plain and speculative calls
    interleaved within the case's budget: tokens/s, the speed-up and the acceptance rate."""
    from bench.core.timing import budget_for, record_step_samples

    new = session.profile.gen_new_tokens
    if c["mode"] == "assisted" and draft is None:
        draft, what = draft_of(model)
        row["draft"] = what
    first = speculate(model, ids, new, c["mode"], draft, c["device"])
    row.check(len(first["tokens"]) == new, f"{c['mode']} decoding returned {len(first['tokens'])} tokens, asked {new}")
    verdict = judge(first["tokens"][None], ref["tokens"][:1], ref["logits"][:1])
    row.update(token_parity="tie" if verdict.tie else "equal" if verdict.ok else "differs",
               first_diff_pos=verdict.first_diff, parity_note=verdict.text or None)
    row.check(verdict.ok, f"{c['mode']} decoding returned other tokens than greedy decoding: {verdict.text}")
    budget = budget_for(session.profile.budget, c["device"], c["dtype"], row)
    rounds = int(min(budget.max_rounds, max(3, budget.measure_s / max(2 * first["wall_s"], 1e-6))))
    plain_s, runs = [], []
    for _ in range(rounds):  # interleaved: a drift of the machine moves both alike
        plain_s.append(plain(model, ids, new, c["device"]))
        runs.append(speculate(model, ids, new, c["mode"], draft, c["device"]))
    spec_s = [r["wall_s"] for r in runs]
    if benchmark is not None:
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        record_step_samples(benchmark, spec_s)
        row["samples_of"] = f"one {c['mode']} generate() call"  # not a decode step: no timing metric reads them
    proposed, accepted = sum(r["proposed"] for r in runs), sum(r["accepted"] for r in runs)
    row.update(rounds=rounds, tokens_per_s=new / statistics.median(spec_s),
               speedup_vs_plain=statistics.median(plain_s) / statistics.median(spec_s),
               acceptance_rate=accepted / proposed if proposed else None, draft_tokens_proposed=proposed / rounds,
               accepted_per_target_forward=accepted / sum(r["target_calls"] for r in runs),
               acceptance_note=None if proposed else "no candidates proposed (no n-gram of the text found in the "
                                                     "prompt)")
