"""Quantized decoding through the ecosystem's own path: torchao's ``quantize_`` with its configs
on the zoo's decoders, and transformers' ``TorchAoConfig`` (``from_pretrained(...,
quantization_config=...)``) for a ``--hf-model`` checkpoint.

A quantized model cannot give eager's tokens; its quality is judged on the fixed held-out text
(``bench.models.heldout``) against the same model unquantized: the perplexity may move by at
most the scheme's declared relative bound, and the next-token argmax must agree at no fewer
than the declared fraction of positions. Beyond either bound the row is a ``mismatch`` (a
quantization with wrong scales is); within, it is timed like the eager rows.

The bounds are wide because the zoo's decoders have random weights: their logits are nearly
flat, so int8 rounding flips the argmax at 17-27 % of the positions of the standard decoder
(measured: int8 weight-only 0.83 agreement, perplexity -2.3 %; int8 dynamic 0.73, -0.7 %),
where a trained checkpoint keeps well above 0.95. Scales 10 % off already move the perplexity
by +69 % and the agreement to 0.53 there.
"""
from __future__ import annotations

from bench.models.heldout import heldout_ids, quality

SCHEMES = ("int8_weight_only", "int8_dynamic", "int4_weight_only", "float8_dynamic")
# scheme -> (largest relative perplexity change, smallest top-1 agreement)
BOUNDS = {"int8_weight_only": (0.10, 0.70), "int8_dynamic": (0.10, 0.60), "int4_weight_only": (0.25, 0.40),
          "float8_dynamic": (0.10, 0.70)}


def config(scheme: str):
    """torchao's config object for ``scheme`` (raises ImportError without torchao)."""
    import torchao.quantization as q

    if scheme == "int8_weight_only":
        return q.Int8WeightOnlyConfig()
    if scheme == "int8_dynamic":  # int8 activations quantized per token at run time, int8 weights
        return q.Int8DynamicActivationInt8WeightConfig()
    if scheme == "int4_weight_only":
        return q.Int4WeightOnlyConfig(group_size=128)
    if scheme == "float8_dynamic":
        return q.Float8DynamicActivationFloat8WeightConfig()
    raise ValueError(f"unknown quantization scheme {scheme!r}; valid: {', '.join(SCHEMES)}")


def quantize(model, scheme: str, hf_model: str | None = None, load=None):
    """The quantized model: the zoo's model quantized in place by ``quantize_``, or the
    checkpoint loaded again through ``TorchAoConfig`` (``load(quantization_config=...)``)."""
    cfg = config(scheme)
    if hf_model is not None:
        from transformers import TorchAoConfig

        return load(quantization_config=TorchAoConfig(cfg))
    from torchao.quantization import quantize_

    quantize_(model, cfg)
    return model


def judge(base, quantized, scheme: str, row) -> None:
    """Record the quality line and fail the row beyond the scheme's bounds."""
    change = quantized.perplexity / base.perplexity - 1
    agreement = float((quantized.top1 == base.top1).float().mean())
    most, least = BOUNDS[scheme]
    row.update(perplexity=quantized.perplexity, perplexity_unquantized=base.perplexity, perplexity_change=change,
               top1_agreement=agreement, quality_bound=f"|perplexity change| <= {most:.0%}, top-1 agreement >= "
                                                      f"{least:.0%}")
    row.check(abs(change) <= most and agreement >= least,
              f"{scheme}: perplexity {quantized.perplexity:.4g} against {base.perplexity:.4g} unquantized "
              f"({change:+.1%}, bound {most:.0%}), top-1 agreement {agreement:.3f} (bound >= {least})")


def quantized_model(model, c: dict, session, row, load):
    """The quality line first: the held-out text's perplexity and argmaxes unquantized, then
    quantized (``load(**kwargs)`` loads the ``--hf-model`` checkpoint again); the quantized
    model is what the row goes on to time. No torchao, or no kernel for this device: the row
    is ``unsupported`` with the reason."""
    hf = session.settings.hf_model if c["model"] == "hf" else None
    text = heldout_ids(model.config.vocab_size, hf)
    base = quality(model, text)
    try:
        model = quantize(model, c["mode"], hf, load=load)
        after = quality(model, text)
    except (ImportError, NotImplementedError, ValueError) as exc:
        row.end("unsupported", f"{c['mode']}: {type(exc).__name__}: {str(exc)[:250]}")
    judge(base, after, c["mode"], row)
    return model
