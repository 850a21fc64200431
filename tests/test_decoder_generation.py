"""The generation suite's checks: greedy token parity with the tie rule, a planted padding leak
caught and named, a local causal-LM checkpoint through --hf-model, torch.compile of the decode
step proven compiled and equal, the KV cache against its formula, and declared metrics."""
import dataclasses

import pytest
import torch

from bench.core.profiles import PROFILES, Settings
from bench.core.rows import METRICS, SUITE_COLUMNS
from bench.core.session import Session
from bench.generation import scenario
from bench.models import decoders as zoo
from bench.models.token_parity import judge_tokens


def _session(**kwargs) -> Session:
    return Session(Settings(PROFILES["smoke"], ("cpu",), **kwargs))


def _logits(top: int, second: int, margin: float, vocab: int = 8) -> torch.Tensor:
    x = torch.zeros(vocab)
    x[top], x[second] = 1.0, 1.0 - margin
    return x


# ---- the tie rule ----

def test_a_divergence_beyond_the_tolerance_is_a_mismatch_naming_the_position():
    ref = [torch.tensor([1, 2, 3])]
    logits = [[_logits(1, 0, 0.5), _logits(2, 5, 0.5), _logits(3, 0, 0.5)]]
    verdict = judge_tokens(torch.tensor([[1, 5, 3]]), ref, logits, torch.float32)
    assert not verdict.ok and verdict.first_diff == 1 and verdict.margin == pytest.approx(0.5)
    assert "sequence 0 position 1: token 5 where eager chose 2" in verdict.text


def test_a_divergence_at_a_tie_is_reported_as_a_tie():
    ref = [torch.tensor([1, 2, 3]), torch.tensor([4, 4, 4])]
    logits = [[_logits(1, 0, 0.5), _logits(2, 5, 1e-6), _logits(3, 0, 0.5)], [_logits(4, 0, 0.5)] * 3]
    verdict = judge_tokens(torch.tensor([[1, 5, 7], [4, 4, 4]]), ref, logits, torch.float32)
    assert verdict.ok and verdict.tie and verdict.first_diff == 1 and "a tie" in verdict.text


def test_equal_tokens_pass_silently():
    verdict = judge_tokens(torch.tensor([[1, 2]]), [torch.tensor([1, 2])], [[_logits(1, 0, 0.5)] * 2],
                           torch.float32)
    assert verdict.ok and not verdict.tie and verdict.text == ""


# ---- end to end on the smoke zoo ----

def test_an_attention_that_ignores_the_padding_mask_is_caught(monkeypatch):
    """The classic breakage: padded positions leak into attention. The left-padded sequences
    then decode other tokens than they do alone; the row names where."""
    build = zoo.build

    def leaky(*args, **kwargs):
        model, desc = build(*args, **kwargs)
        forward = model.forward

        def no_mask(*a, **kw):
            kw["attention_mask"] = None
            return forward(*a, **kw)

        model.forward = no_mask
        return model, desc

    monkeypatch.setattr(zoo, "build", leaky)
    row = scenario.run(scenario.Config(model="llama", batch_size=2), _session())
    assert row["status"] == "mismatch", row
    assert "sequence 1 position" in row["reason"] and "logit margin" in row["reason"], row["reason"]


def test_the_reference_decoder_is_ok_and_its_cache_matches_the_formula():
    row = scenario.run(scenario.Config(model="llama", batch_size=2), _session())
    assert row["status"] == "ok" and row["token_parity"] == "equal", row
    # layers, kv heads, head dim, fp32
    assert row["kv_cache_bytes_per_token"] == row["kv_cache_bytes_formula"] == 2 * 2 * 2 * 16 * 4
    assert row["ttft_ms"] > 0 and row["decode_ms_p50"] > 0 and row["weights"] == zoo.RANDOM_WEIGHTS
    assert "scaled_dot_product" in row["sdpa_kernel"]


def test_compiled_decoding_is_compiled_and_produces_eagers_tokens():
    """torch.compile of the decode step (transformers' CompileConfig, static cache), with the
    eager backend: no code generation, so the test is quick; the suite uses Inductor."""
    row = scenario.run(scenario.Config(model="llama", mode="compile", cache="static", batch_size=2),
                       _session(compile_backend="eager"))
    assert row["status"] == "ok", row
    assert row["graphs_compiled"] >= 1 and row["recompiles"] is not None and row["build_s"] > 0


def test_a_local_causal_lm_checkpoint_runs_through_the_same_code(tmp_path):
    model, _ = zoo.build("llama", "smoke")
    model.save_pretrained(tmp_path)
    session = _session(hf_model=str(tmp_path))
    assert any(c.values[0]["model"] == "hf" for c in scenario.cases(session))
    row = scenario.run(scenario.Config(model="hf", batch_size=2), session)
    assert row["status"] == "ok" and row["weights"] == f"checkpoint {tmp_path}", row
    assert row["model"] == str(tmp_path)  # the name as the user gave it, not the case's internal "hf"


def test_a_checkpoint_without_sdpa_gets_eager_attention_rows_with_token_parity(tmp_path):
    """Gemma 2 (sliding window every other layer, logit soft-capping) has no sdpa path: its rows
    ask for the attention its class supports, and its left-padded batch keeps eager's tokens."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    cfg = Gemma2Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                       max_position_embeddings=128, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    torch.manual_seed(0)
    Gemma2ForCausalLM(cfg).save_pretrained(tmp_path)
    session = _session(hf_model=str(tmp_path))
    hf = [c.values[0] for c in scenario.cases(session) if c.values[0]["model"] == "hf"]
    # transformers 5.25 gives Gemma 2 no sdpa path; 5.17 did (the GPU image's): the class decides
    expected = "sdpa" if getattr(Gemma2ForCausalLM, "_supports_sdpa", False) else "eager"
    assert hf and {c["attention"] for c in hf} == {expected}
    row = scenario.run(scenario.Config(model="hf", attention="eager", batch_size=2), session)
    assert row["status"] == "ok" and row["token_parity"] in ("equal", "tie"), row


def test_a_bad_case_is_refused_naming_what_is_valid():
    with pytest.raises(ValueError, match="needs cache='static'"):
        scenario.Config(mode="compile", cache="dynamic")
    with pytest.raises(ValueError, match="valid: llama, gpt2, mixtral, hf"):
        scenario.Config(model="bert")


def test_every_measured_column_is_declared_with_unit_and_direction():
    declared = METRICS["generation"]
    for col in ("ttft_ms", "decode_ms_p50", "decode_ms_p95", "decode_tokens_per_s", "tokens_per_s",
                "kv_cache_bytes_per_token", "build_s", "recompiles"):
        assert col in SUITE_COLUMNS["generation"] and col in declared, col
        assert declared[col].unit and declared[col].better in ("lower", "higher")
    assert declared["decode_ms_p50"].kind == "timing"  # backed by the steady decode steps


def test_smoke_keeps_the_compiled_and_flex_rows_out_and_says_why():
    skips = {(c.values[0]["mode"], c.values[0]["attention"]): m.kwargs.get("reason")
             for c in scenario.cases(_session()) for m in c.marks if m.name == "skip"}
    assert {("compile", "sdpa"), ("export", "sdpa"), ("eager", "flex_attention")} <= set(skips), skips
    assert all(skips.values()) and ("eager", "sdpa") not in skips


def test_profiles_size_the_decoders():
    assert dataclasses.astuple(zoo.SIZES["full"])[:6] == (2048, 16, 32, 8, 8192, 128256)  # Llama-3.2-1B
