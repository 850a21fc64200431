"""The decoder zoo: real transformers architectures built from their configs with seeded
random weights ("random weights" in every row), sized per profile, plus a user's causal-LM
checkpoint (``--hf-model``, a local folder or a hub id) through the same code.

- ``llama``: GQA (fewer key/value heads than query heads), RoPE, RMSNorm, SwiGLU; in the
  ``full`` profile the shape of Llama-3.2-1B (its published config.json).
- ``gpt2``: learned positions, LayerNorm, GELU MLP, multi-head attention (one KV head per head).
- ``mixtral``: a sparse mixture of experts (top-2 of 4) on a Llama-like block, with a sliding
  attention window.
"""
from __future__ import annotations

import dataclasses

import torch

RANDOM_WEIGHTS = "random weights (seeded): the architecture's speed and correctness, not its quality"
# Wider than transformers' default 0.02: random logits then have top-2 gaps well above fp32
# rounding, so greedy tokens are a decisive test rather than a string of ties.
INIT_RANGE = 0.1


@dataclasses.dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_positions: int = 2048


SIZES = {
    "smoke": Size(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=512),
    "standard": Size(hidden=512, layers=4, heads=8, kv_heads=2, intermediate=1408, vocab=16000),
    # Llama-3.2-1B's config.json (hf.co/meta-llama/Llama-3.2-1B): 16 layers, 2048 hidden,
    # 32 heads, 8 KV heads, 8192 intermediate, 128256 vocabulary
    "full": Size(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, max_positions=4096),
}

DECODERS = ("llama", "gpt2", "mixtral")


def size_for(profile_size: str, device: str) -> str:
    """The zoo size a profile decodes on ``device``: the full profile's Llama-3.2-1B shape is
    for GPUs; on a CPU (1.2 B parameters, an fp64 reference of 10 GB) it is the standard size."""
    return "standard" if profile_size == "full" and device == "cpu" else profile_size


def config(name: str, profile: str):
    """The transformers config of decoder ``name`` at ``profile``'s size."""
    import transformers as tf

    s = SIZES[profile]
    if name == "llama":
        return tf.LlamaConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                              num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                              max_position_embeddings=s.max_positions, initializer_range=INIT_RANGE,
                              tie_word_embeddings=profile == "full")
    if name == "gpt2":
        return tf.GPT2Config(vocab_size=s.vocab, n_embd=s.hidden, n_layer=s.layers, n_head=s.heads,
                             n_positions=s.max_positions, initializer_range=INIT_RANGE, resid_pdrop=0.0,
                             embd_pdrop=0.0, attn_pdrop=0.0)
    if name == "mixtral":
        return tf.MixtralConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate // 2,
                                num_hidden_layers=s.layers, num_attention_heads=s.heads,
                                num_key_value_heads=s.kv_heads, num_local_experts=4, num_experts_per_tok=2,
                                max_position_embeddings=s.max_positions, sliding_window=s.max_positions // 2,
                                initializer_range=INIT_RANGE)
    if name == "mistral":  # Llama's block with a sliding attention window (the serving suite sets it)
        return tf.MistralConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                                num_hidden_layers=s.layers, num_attention_heads=s.heads,
                                num_key_value_heads=s.kv_heads, max_position_embeddings=4 * s.max_positions,
                                sliding_window=s.max_positions // 2, initializer_range=INIT_RANGE)
    raise ValueError(f"unknown decoder {name!r}; valid: {', '.join(DECODERS + ('mistral',))}")


def hf_attention(hf_model: str) -> str:
    """The attention implementation the rows of a ``--hf-model`` checkpoint ask for: ``sdpa``
    when its class supports it (``_supports_sdpa``; Gemma 2 does not, for its logit soft-capping),
    else ``eager``, which every model has. Read from config.json and the class, without loading
    weights (a local folder only: collection never goes to the hub); a checkpoint that cannot be
    read here asks for sdpa, and its rows say why it failed."""
    from pathlib import Path

    if not (Path(hf_model).expanduser() / "config.json").is_file():
        return "sdpa"
    try:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(hf_model))]
    except Exception:  # no network, an unknown model type: loading it will say why
        return "sdpa"
    return "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"


def build(name: str, profile: str, attn: str = "sdpa", device: str = "cpu", dtype: torch.dtype = torch.float32,
          hf_model: str | None = None, **overrides):
    """(model in eval mode, description). ``name`` "hf" loads ``hf_model`` (a causal LM);
    ``overrides``: config fields set on the zoo config (``sliding_window=256``)."""
    from transformers import AutoModelForCausalLM

    if name == "hf":  # overrides: loading arguments here (quantization_config=...)
        model = AutoModelForCausalLM.from_pretrained(hf_model, attn_implementation=attn, dtype=dtype, **overrides)
        return model.to(device).eval(), f"checkpoint {hf_model}"  # pretrained or not: not ours to say
    cfg = config(name, profile)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    # no end-of-sequence token: every generation runs its max_new_tokens (a random model would
    # otherwise stop wherever it happens to emit one); pad id 0 for left-padded batches
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = None, None, 0
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = None, None, 0
    return model.to(device=device, dtype=dtype).eval(), RANDOM_WEIGHTS


def kv_bytes_formula(model, dtype: torch.dtype) -> int:
    """Bytes of keys and values per token: 2 x layers x kv_heads x head_dim x dtype size."""
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    return 2 * layers * kv * head_dim * torch.tensor([], dtype=dtype).element_size()
