"""A fixed held-out text for a decoder's quality line: perplexity (exp of the mean next-token
negative log-likelihood) and the next-token argmax at every position, so two variants of one
model (quantized and not, say) can be compared position by position.

The text is written for this project (no data set to download). A checkpoint with a tokenizer
reads it through its own tokenizer; the zoo's random-weight decoders, which have none, read its
UTF-8 bytes as token ids (byte + 1, folded into the vocabulary): the same ids every run.
"""
from __future__ import annotations

import dataclasses

import torch

TEXT = (
    "Before an upgrade, an engineer who serves a language model wants three answers. Does the new "
    "build compute what the old one computed? Is it as fast, on this machine, under this load? And "
    "when it is not, which change is to blame? The first answer comes from comparing numbers that "
    "should agree: the tokens a model chooses, the logits behind them, the gradients of a training "
    "step. The second comes from timing done with care: a warm machine, enough repetitions, the "
    "spread reported next to the median, and nothing else running. The third comes from keeping "
    "every result, with the versions and the hardware that produced it, so that two runs can be "
    "set side by side. A quantized model cannot give the same tokens as the model it came from; it "
    "can stay close. How close is a matter of measurement too: the perplexity of a fixed text, and "
    "how often the two models would pick the same next word. A river does not ask whether the "
    "bridge was built in spring or in autumn; it asks only whether the bridge holds. Seven small "
    "boats left the harbour at dawn, and by noon the wind had turned twice. The baker counted the "
    "loaves, found one missing, and laughed, because the child at the door had flour on her sleeve."
)


@dataclasses.dataclass
class Quality:
    perplexity: float
    top1: torch.Tensor  # (positions,) the next-token argmax at every position


def heldout_ids(vocab: int, tokenizer_path: str | None = None, max_len: int = 512) -> torch.Tensor:
    """(1, n) token ids of ``TEXT``: through the checkpoint's tokenizer where ``tokenizer_path``
    (a folder or a hub id) has one, else its UTF-8 bytes as ids in [1, vocab)."""
    if tokenizer_path:  # a local folder or a hub id: the checkpoint's own tokenizer where it has one
        from transformers import AutoTokenizer

        try:
            ids = AutoTokenizer.from_pretrained(tokenizer_path)(TEXT, return_tensors="pt")["input_ids"][:, :max_len]
        except (OSError, ValueError, KeyError):  # no tokenizer files (a folder of weights only), no hub here
            ids = None
        if ids is not None and ids.shape[1] > 1 and int(ids.max()) < vocab:
            return ids
    if vocab < 3:
        raise ValueError(f"a vocabulary of {vocab} tokens cannot hold the held-out text")
    return torch.tensor([[b % (vocab - 1) + 1 for b in TEXT.encode()[:max_len]]])


def quality(model, ids: torch.Tensor) -> Quality:
    """Perplexity of ``ids`` under ``model`` (one forward, logits in fp32) and its argmaxes."""
    with torch.no_grad():
        logits = model(ids.to(model.device)).logits[0, :-1].float().cpu()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:].cpu())
    return Quality(float(nll.exp()), logits.argmax(-1))


# How far a mode's perplexity may move from eager's (eager attention, same dtype) on the held-out
# text before it is a mismatch: rounding of the dtype's matmuls and softmax moves it a little,
# a broken kernel a lot.
PERPLEXITY_RTOL = {"fp32": 1e-3, "tf32": 5e-3, "fp16": 1e-2, "bf16": 2e-2}


def judge_perplexity(row, model, ids: torch.Tensor, reference: float, precision: str, mode: str) -> None:
    """The row's perplexity of the held-out text next to eager's; beyond the dtype's relative
    bound the row is a ``mismatch`` (``row``: a ``bench.core.rows.Row``)."""
    ppl = quality(model, ids).perplexity
    change, bound = ppl / reference - 1, PERPLEXITY_RTOL.get(precision, 2e-2)
    row.update(perplexity=ppl, perplexity_eager=reference, perplexity_change=change)
    row.check(abs(change) <= bound, f"{mode}: perplexity of the held-out text {ppl:.5g} against eager's "
                                    f"{reference:.5g} ({change:+.2%}, bound {bound:.1%} for {precision})")
