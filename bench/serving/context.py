"""Long-context rows: one request with a long prompt to a sliding-window decoder (Mistral's
block; every layer attends to the last ``window`` positions), so that beyond the window the
cache need only hold ``window`` positions. Correctness first: greedy tokens against eager
attention with a dynamic cache *on the same window*, so a mode that ignores the window differs;
then the bytes the cache really holds against the window's formula (2 x layers x KV heads x
head dim x dtype bytes x min(context, window)), so a cache that keeps the whole context or
allocates ahead is a ``mismatch``; then prefill (TTFT) and decode steps timed within the
case's budget, with peak memory.
"""
from __future__ import annotations

import torch

from bench.core.hardware import DTYPES
from bench.core.timing import budget_for
from bench.models import decoders as zoo
from bench.models import decoding as D
from bench.models.token_parity import judge_tokens
from bench.serving import plan


def held_bytes(cache, batch: int = 1) -> int:
    """Bytes of every key and value tensor the cache holds, per sequence."""
    return sum(t.numel() * t.element_size() for t in D.cache_tensors(cache)) // batch


def run_long_context(c: dict, session, benchmark, row) -> None:
    window, _, new = plan.CONTEXTS[plan.size(session, c["device"])]
    n = c["prompt_len"]
    model = plan.model(c, session, sliding_window=window)
    gen = torch.Generator().manual_seed(n)
    ids = torch.randint(1, model.config.vocab_size, (1, n), generator=gen).to(c["device"])
    mask = torch.ones_like(ids)

    def reference():
        eager = plan.model(c, session, attn="eager", sliding_window=window)
        g = D.generate(eager, ids, mask, new, device=c["device"])
        return g.tokens[0], [x[0] for x in g.logits]

    ref_tokens, ref_logits = session.shared(("serving_context_ref", n, c["device"], c["dtype"], window), reference,
                                            slot="serving_context_ref")
    row.update(prompt_len=n, new_tokens=new, window=window, window_binds=n + new > window, requests=1,
               weights=zoo.RANDOM_WEIGHTS)
    first = D.generate(model, ids, mask, new, cache=c["cache"], device=c["device"])
    v = judge_tokens(first.tokens, [ref_tokens], [ref_logits], DTYPES[c["dtype"]], c["device"])
    row.update(token_parity="tie" if v.tie else "equal" if v.ok else "differs", first_diff_pos=v.first_diff,
               parity_note=v.text or None)
    row.check(v.ok, f"tokens differ from eager attention's on the same {window}-position window: {v.text}")
    per_token = zoo.kv_bytes_formula(model, DTYPES[c["dtype"]])
    positions = min(n + new, window)
    formula, held = per_token * positions, held_bytes(first.cache)
    row.update(kv_cache_bytes_held=held, kv_cache_bytes_formula=formula, kv_cache_bytes_ratio=held / formula)
    row.check(held <= formula * plan.KV_SLACK,
              f"the {c['cache']} cache holds {held} bytes per sequence; the window's formula says {formula} "
              f"({positions} positions x {per_token} bytes): {held / formula:.2f}x, over-allocated")
    _time(model, c, session, ids, mask, new, first, benchmark, row)


def _time(model, c, session, ids, mask, new, first, benchmark, row) -> None:
    budget = budget_for(session.profile.budget, c["device"], c["dtype"], row)
    D.time_calls(lambda: D.generate(model, ids, mask, new, cache=c["cache"], device=c["device"]), first, budget,
                 c["device"], benchmark, row, min_rounds=2)  # a long prompt's call takes seconds
