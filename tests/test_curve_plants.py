"""Real training curves through the curve verdict (bench.report.curves): two runs of one
environment are ``same``; each change an upgrade can bring in unannounced is ``changed`` at the
step where it first shows: another optimizer epsilon (step 1: the first loss is computed before
any update), another dropout RNG path (step 0), an attention kernel with other numerics (step 0).
The smoke Llama with attention dropout 0.1 (as the Trainer rows' BERT has), AdamW, eight seeded
steps on the CPU, where A/A runs are bitwise equal."""
import pytest
import torch

from bench.models import decoders as zoo
from bench.report.curves import judge_curve


def _curve(attn: str = "sdpa", eps: float = 1e-8, steps: int = 8) -> list[float]:
    model, _ = zoo.build("llama", "smoke", attn, attention_dropout=0.1)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=eps)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(1, model.config.vocab_size, (4, 32), generator=gen) for _ in range(steps)]
    torch.manual_seed(0)  # the dropout masks
    losses = []
    for ids in batches:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    return losses


def _judge(base: list[float], new: list[float]) -> dict:
    return judge_curve("case", "trainer", [{"loss_curve": base, "device": "cpu"}],
                       [{"loss_curve": new, "device": "cpu"}])


@pytest.fixture(scope="module")
def base() -> list[float]:
    return _curve()


def test_two_runs_of_one_environment_are_the_same_curve(base):
    judged = _judge(base, _curve())
    assert judged["verdict"] == "same" and judged["max_rel_diff"] == 0.0


def test_another_optimizer_epsilon_is_changed_from_the_first_update(base):
    judged = _judge(base, _curve(eps=1e-6))
    assert judged["verdict"] == "changed" and judged["first_step"] == 1, judged


def test_another_dropout_rng_path_is_changed_from_the_first_step(base, monkeypatch):
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def one_draw_earlier(*args, **kwargs):  # an upgrade that draws one more random number first
        torch.rand(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", one_draw_earlier)
    judged = _judge(base, _curve())
    assert judged["verdict"] == "changed" and judged["first_step"] == 0, judged


def test_an_attention_kernel_with_other_numerics_is_changed_and_eager_against_sdpa_is_not(base, monkeypatch):
    """On the CPU, eager attention and SDPA give the same curve (SDPA with dropout runs its math
    fallback, which draws the masks as eager's dropout does; the products round alike: 1.4e-7
    relative at most without dropout): the verdict is ``same``, as it should be. A kernel whose
    numbers do differ (its softmax in bf16, as a low-precision fused kernel may) is ``changed``
    from the first step."""
    assert _judge(base, _curve(attn="eager"))["verdict"] == "same"
    def bf16_softmax(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))  # grouped-query heads
        scores = (q @ k.transpose(-2, -1)) * (scale or q.shape[-1] ** -0.5)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                else scores + attn_mask
        elif is_causal:
            scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
        weights = torch.softmax(scores.bfloat16(), dim=-1).to(q.dtype)
        return torch.nn.functional.dropout(weights, dropout_p) @ v

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", bf16_softmax)
    judged = _judge(base, _curve())
    assert judged["verdict"] == "changed" and judged["first_step"] == 0, judged
