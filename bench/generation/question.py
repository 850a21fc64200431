"""The generation question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import COMMON, Metric, twin
from bench.core.question import Question

QUESTION = Question(
    name="generation",
    summary=(
        "does every cache, attention implementation, compile and export mode of a decoder generate "
        "eager's tokens (speculative modes too; quantized ones within a quality bound), and how fast?"
    ),
    suite_file="suites/test_generation.py",
    scenario="bench.generation.scenario",
    columns=("model", "mode", "cache", "attention", "device", "dtype", "batch_size", "prompt_len", "new_tokens",
             "status", "reason", "token_parity", "first_diff_pos", "ttft_ms", "decode_ms_p50", "decode_ms_p95",
             "decode_tokens_per_s", "tokens_per_s", "kv_cache_bytes_per_token", "kv_cache_bytes_formula",
             "peak_mem_mib", "build_s", "recompiles", "sdpa_kernel", "perplexity", "top1_agreement",
             "acceptance_rate", "speedup_vs_plain"),
    metrics={
        "decode_ms_p50": Metric(
            "ms",
            "lower",
            "timing",
            0.10,
            "one decode step (one token per sequence), steady state (first 2 steps left out), median over calls",
        ),
        **twin("decode_ms_p50"),
        "decode_ms_p95": Metric("ms", "lower", "value", 0.25, "one decode step, 95th percentile"),
        "ttft_ms": Metric("ms", "lower", "value", 0.15, "time to first token (prefill), median over calls"),
        "decode_tokens_per_s": Metric("tokens/s", "higher", "derived", doc="batch size / median decode step"),
        "tokens_per_s": Metric("tokens/s", "higher", "value", 0.15,
                               "generated tokens of the batch / median generate() time (prefill included)"),
        "kv_cache_bytes_per_token": Metric(
            "bytes", "lower", "exact", 0.0, "KV cache bytes per position per sequence (static: positions allocated)"
        ),
        "build_s": Metric("s", "lower", "value", 0.50, "compile / export time, first call included"),
        "recompiles": Metric("count", "lower", "exact", 0.0, "frames compiled again for a shorter prompt"),
        "request_ms_p50": Metric(
            "ms", "lower", "value", 0.15, "continuous batching: a request's latency, creation to last token, median"
        ),
        "request_ms_p95": Metric("ms", "lower", "value", 0.25, "continuous batching: request latency, p95"),
        "perplexity": Metric("perplexity", "lower", "value", 0.05,
                             "quantized rows: perplexity of the built-in held-out text (random weights: relative "
                             "only)"),
        "top1_agreement": Metric("fraction", "higher", "value", 0.05,
                                 "quantized rows: positions of the held-out text where the next-token argmax equals "
                                 "the unquantized model's"),
        "acceptance_rate": Metric("fraction", "higher", "exact", 0.0,
                                  "speculative rows: accepted / proposed draft tokens (greedy: deterministic)"),
        "speedup_vs_plain": Metric("x", "higher", "value", 0.15,
                                   "speculative rows: plain generate() time / speculative time, interleaved"),
        **COMMON,
    },
    headline=("model", "mode", "cache", "attention", "device", "dtype", "batch_size", "status", "token_parity",
              "ttft_ms", "decode_ms_p50", "decode_tokens_per_s", "kv_cache_bytes_per_token", "build_s"),
    order=6,
    errors=("decode_logits_max_abs_diff",),
)
