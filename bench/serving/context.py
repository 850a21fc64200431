"""Long-context rows: one request with a long prompt to a sliding-window decoder (Mistral's
block; every layer attends to the last ``window`` positions), so that beyond the window the
cache need only hold ``window`` positions. Correctness first: greedy tokens against eager
attention with a dynamic cache *on the same window*, so a mode that ignores the window differs;
then the bytes the cache really holds against the window's formula (2 x layers x KV heads x
head dim x dtype bytes x min(context, window)), so a cache that keeps the whole context or
allocates ahead is named (``kv_finding``, and the report's headline): a cost, not a wrong
token, so the row stays ``ok`` and ``compare`` judges the bytes between runs; then prefill
(TTFT) and decode steps timed within the case's budget, with peak memory.
"""
from __future__ import annotations

import torch

from bench.core.hardware import DTYPES
from bench.core.timing import budget_for
from bench.models import decoders as zoo
from bench.models import decoding as D
from bench.models.token_parity import judge_tokens
from bench.serving import plan


def held_bytes(cache, batch: int = 1) -> tuple[int, int]:
    """(bytes of memory the cache's key and value tensors keep alive, bytes they show), per
    sequence. The first counts each tensor's storage once (a window kept as a view of a longer
    buffer keeps the whole buffer); the second is what their shapes say."""
    tensors = D.cache_tensors(cache)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values()) // batch, sum(t.numel() * t.element_size() for t in tensors) // batch


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
    formula, (held, shown) = per_token * positions, held_bytes(first.cache)
    row.check(held > 0, f"no key or value tensors found in the {type(first.cache).__name__} generate() returned: "
                        "nothing to measure", status="error")
    row.update(kv_cache_bytes_held=held, kv_cache_bytes_shown=shown, kv_cache_bytes_formula=formula,
               kv_cache_bytes_ratio=held / formula)
    if held > formula * plan.KV_SLACK:  # memory, not correctness: a finding in the row and the headline;
        # compare judges kv_cache_bytes_held (exact) between runs, so a cache that grows is a regression there
        row["kv_finding"] = (f"over-allocated: the {c['cache']} cache holds {held} bytes per sequence, the window's "
                             f"formula {formula} ({positions} positions x {per_token} bytes): {held / formula:.2f}x")
    _time(model, c, session, ids, mask, new, first, benchmark, row)


def _time(model, c, session, ids, mask, new, first, benchmark, row) -> None:
    budget = budget_for(session.profile.budget, c["device"], c["dtype"], row)
    D.time_calls(lambda: D.generate(model, ids, mask, new, cache=c["cache"], device=c["device"]), first, budget,
                 c["device"], benchmark, row, min_rounds=2)  # a long prompt's call takes seconds
