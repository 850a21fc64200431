"""Generation modes judged on their own numbers: quantized rows by their quality line (a wrong
scale caught), speculative rows by greedy equality with their acceptance rate (a draft that
disagrees everywhere accepts nothing and still returns the target's tokens), and compiled
decode steps by the fp64 rule (a step off by 1e-2 that keeps the argmax caught)."""
import pytest
import torch

from bench.core.profiles import PROFILES, Settings
from bench.core.session import Session
from bench.generation import quantized as Q
from bench.generation import speculative as S
from bench.generation.scenario import Config, run
from bench.models import decoders as zoo
from bench.models.heldout import TEXT, heldout_ids, quality

pytest.importorskip("torchao", reason="quantized rows need torchao (a dependency: pip install -e .)")


def _session(**kwargs) -> Session:
    return Session(Settings(PROFILES["smoke"], ("cpu",), **kwargs))


def test_the_heldout_text_is_the_same_ids_every_run_and_its_perplexity_is_finite():
    ids = heldout_ids(512)
    assert ids.shape == (1, len(TEXT.encode()[:512])) and int(ids.min()) >= 1 and int(ids.max()) < 512
    assert torch.equal(ids, heldout_ids(512))
    model, _ = zoo.build("llama", "smoke")
    q = quality(model, ids)
    assert 1 < q.perplexity < float("inf") and q.top1.shape == (ids.shape[1] - 1,)


def test_int8_rows_stay_within_their_quality_bounds_and_are_timed():
    session = _session()
    for scheme in ("int8_weight_only", "int8_dynamic"):
        row = run(Config(mode=scheme, batch_size=2), session)
        assert row["status"] == "ok", row.get("reason")
        assert abs(row["perplexity_change"]) <= Q.BOUNDS[scheme][0] <= 1
        assert 0 < row["top1_agreement"] <= 1 and "not judged" in row["quality_bound"] and row["decode_ms_p50"] > 0


def test_a_quantization_with_wrong_scales_is_a_mismatch(monkeypatch):
    quantize = Q.quantize

    def wrong_scales(model, scheme, hf_model=None, load=None):
        model = quantize(model, scheme, hf_model, load)
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if hasattr(weight, "scale"):
                weight.scale.mul_(1.5)
        return model

    monkeypatch.setattr(Q, "quantize", wrong_scales)
    row = run(Config(mode="int8_weight_only", batch_size=2), _session())
    assert row["status"] == "mismatch" and "perplexity" in row["reason"], row.get("reason")
    assert abs(row["perplexity_change"]) > Q.BOUNDS["int8_weight_only"][0]


def test_speculative_rows_return_greedy_tokens_and_say_how_much_they_accepted():
    session = _session()
    row = run(Config(mode="assisted"), session)
    assert row["status"] == "ok" and row["token_parity"] == "equal", row.get("reason")
    assert 0 <= row["acceptance_rate"] <= 1 and row["speedup_vs_plain"] > 0 and "of 2 layers" in row["draft"]
    row = run(Config(mode="prompt_lookup"), session)  # the prompt quotes itself: candidates to propose
    assert row["status"] == "ok" and row["token_parity"] == "equal", row.get("reason")
    assert row["draft_tokens_proposed"] > 0 and 0 <= row["acceptance_rate"] <= 1


def test_a_draft_that_disagrees_everywhere_accepts_nothing_and_changes_no_token(monkeypatch):
    draft_of = S.draft_of

    def contrary(model):
        draft, what = draft_of(model)
        with torch.no_grad():  # the head rolled by one token: the draft's argmax is never the target's
            draft.lm_head.weight.copy_(torch.roll(model.lm_head.weight, 1, dims=0))
        return draft, what

    monkeypatch.setattr(S, "draft_of", contrary)
    row = run(Config(mode="assisted"), _session())
    assert row["status"] == "ok" and row["token_parity"] == "equal", row.get("reason")
    assert row["acceptance_rate"] <= 0.05 and row["draft_tokens_proposed"] > 0


def test_a_compiled_decode_step_off_by_1e2_that_keeps_the_argmax_is_a_mismatch(monkeypatch):
    """transformers compiles the decode steps only: the offset is planted where the sequence
    length is 1 (a decode step), so the prefill is clean and every token still equals eager's."""
    build = zoo.build

    def offset(*args, **kwargs):
        model, desc = build(*args, **kwargs)
        if args[2] != "sdpa":  # eager's reference (eager attention) stays clean
            return model, desc
        head = model.lm_head.forward
        model.lm_head.forward = lambda x: head(x) + (1e-2 if x.shape[-2] == 1 else 0.0)
        return model, desc

    monkeypatch.setattr(zoo, "build", offset)
    row = run(Config(mode="compile", cache="static", batch_size=2), _session(compile_backend="eager"))
    assert row["status"] == "mismatch" and "decode steps" in row["reason"] and "fp64" in row["reason"], row
    assert row["token_parity"] == "equal"


def test_a_saved_checkpoint_gets_a_quality_line_in_every_mode(tmp_path):
    """--hf-model: perplexity of the held-out text next to eager's in the eager and static-cache
    rows, and the int8 row quantized through transformers' TorchAoConfig on loading."""
    model, _ = zoo.build("llama", "smoke")
    model.save_pretrained(tmp_path)
    session = _session(hf_model=str(tmp_path))
    for cfg in (Config(model="hf", batch_size=2), Config(model="hf", cache="static", batch_size=2)):
        row = run(cfg, session)
        assert row["status"] == "ok" and row["perplexity"] > 1, row.get("reason")
        assert abs(row["perplexity_change"]) < 1e-3 and row["model"] == str(tmp_path)
    row = run(Config(model="hf", mode="int8_weight_only", batch_size=2), session)  # a checkpoint: both bounds
    assert row["status"] == "ok" and "top-1 agreement >=" in row["quality_bound"], row.get("reason")


def test_a_mode_whose_perplexity_moves_is_a_mismatch(tmp_path, monkeypatch):
    model, _ = zoo.build("llama", "smoke")
    model.save_pretrained(tmp_path)
    build = zoo.build

    def hotter(*args, **kwargs):
        """The timed model's logits scaled beyond 100 positions (a kernel that breaks on long
        inputs): the 16-token prompts decode cleanly, the held-out text does not."""
        model, desc = build(*args, **kwargs)
        if args[2] == "sdpa":
            head = model.lm_head.forward
            model.lm_head.forward = lambda x: head(x) * (1.05 if x.shape[-2] > 100 else 1.0)
        return model, desc

    monkeypatch.setattr(zoo, "build", hotter)
    row = run(Config(model="hf", cache="static", batch_size=2), _session(hf_model=str(tmp_path)))
    assert row["status"] == "mismatch" and "perplexity of the held-out text" in row["reason"], row
    assert row["token_parity"] == "equal"
