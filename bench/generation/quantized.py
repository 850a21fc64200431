"""Quantized decoding through the ecosystem's own path: torchao's ``quantize_`` with its configs
on the zoo's decoders, and transformers' ``TorchAoConfig`` (``from_pretrained(...,
quantization_config=...)``) for a ``--hf-model`` checkpoint.

A quantized model cannot give eager's tokens; its quality is judged on the fixed held-out text
(``bench.models.heldout``) against the same model unquantized: the perplexity may move by at
most the scheme's declared relative bound, and, for a checkpoint's weights, the next-token
argmax must agree at no fewer than the declared share of positions. Beyond either bound the
row is a ``mismatch`` (a quantization with wrong scales is); within, it is timed like the eager
rows.

The zoo's random-weight decoders have their top-1 agreement recorded but not judged: their
logits are nearly tied at many positions, so the agreement measures ties, not quality. Measured
on the standard decoder, int8 dynamic quantization agreed at 0.78 of the positions on the
AVX-512 path and 0.55 on the AVX2 path (another int8 kernel) with the perplexity unmoved
(+0.08 % and -0.07 %), while scales 10 % off gave 0.52 agreement and +69 % perplexity: the
perplexity separates a broken quantization from a rounding one there, the agreement does not.
"""
from __future__ import annotations

from bench.models.heldout import heldout_ids, quality

SCHEMES = ("int8_weight_only", "int8_dynamic", "int4_weight_only", "float8_dynamic")
# scheme -> (largest relative perplexity change, smallest top-1 agreement of a checkpoint's weights)
BOUNDS = {"int8_weight_only": (0.05, 0.90), "int8_dynamic": (0.05, 0.85), "int4_weight_only": (0.15, 0.75),
          "float8_dynamic": (0.05, 0.90)}


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


def judge(base, quantized, scheme: str, row, checkpoint: bool) -> None:
    """Record the quality line and fail the row beyond the scheme's bounds (the agreement's
    only for a checkpoint's weights, ``checkpoint``)."""
    change = quantized.perplexity / base.perplexity - 1
    agreement = float((quantized.top1 == base.top1).float().mean())
    most, least = BOUNDS[scheme]
    bound = f"|perplexity change| <= {most:.0%}" + (f", top-1 agreement >= {least:.0%}" if checkpoint else
                                                    " (random weights: top-1 agreement recorded, not judged)")
    row.update(perplexity=quantized.perplexity, perplexity_unquantized=base.perplexity, perplexity_change=change,
               top1_agreement=agreement, quality_bound=bound)
    row.check(abs(change) <= most and (agreement >= least or not checkpoint),
              f"{scheme}: perplexity {quantized.perplexity:.4g} against {base.perplexity:.4g} unquantized "
              f"({change:+.1%}), top-1 agreement {agreement:.3f}; bounds: {bound}")


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
    judge(base, after, c["mode"], row, checkpoint=hf is not None)
    return model
