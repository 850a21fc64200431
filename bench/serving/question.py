"""The serving question's declaration (``bench.core.question``): a decoder under load (requests
arriving as a Poisson process or all at once, served by continuous or static batching) and at
long context (a sliding-window decoder whose window binds) -> serving.csv."""

from bench.core.metrics import COMMON, Metric, twin
from bench.core.question import Question

QUESTION = Question(
    name="serving",
    summary=(
        "does a decoder serve every request eager's tokens under load and at long context, and how many "
        "requests a second meet the latency targets (goodput)?"
    ),
    suite_file="suites/test_serving.py",
    scenario="bench.serving.scenario",
    columns=("model", "scenario", "scheduler", "load", "request_rate", "cache", "device", "dtype", "requests",
             "prompt_len", "new_tokens", "status", "reason", "token_parity", "goodput", "ttft_target_ms",
             "tpot_target_ms", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p90",
             "tpot_ms_p99", "itl_ms_p90", "e2e_ms_p90", "requests_per_s", "output_tokens_per_s", "window",
             "ttft_ms", "decode_ms_p50", "kv_cache_bytes_held", "kv_cache_bytes_formula", "peak_mem_mib",
             "energy_j_per_token", "max_rate_meeting", "rate_bracket_low", "rate_bracket_high", "trials"),
    metrics={
        "goodput": Metric("requests/s", "higher", "value", 0.20,
                          "requests a second that met both the TTFT and the TPOT target (DistServe's goodput)"),
        "max_rate_meeting": Metric("requests/s", "higher", "value", 0.45,
                                   "capacity rows: the highest Poisson rate tried that met both targets at p90 "
                                   "(rates tried about 1.4x apart: a smaller move is one step of the search)"),
        "requests_per_s": Metric("requests/s", "higher", "value", 0.15, "completed requests / trace duration"),
        "output_tokens_per_s": Metric("tokens/s", "higher", "value", 0.15, "output tokens / trace duration"),
        "ttft_ms_p90": Metric("ms", "lower", "value", 0.25, "time to first token from the scheduled arrival, p90"),
        "tpot_ms_p90": Metric("ms", "lower", "value", 0.20, "time per output token after the first, p90"),
        "e2e_ms_p90": Metric("ms", "lower", "value", 0.25, "arrival to last token, p90"),
        "ttft_ms": Metric("ms", "lower", "value", 0.15, "long context: prefill of the whole prompt, median"),
        "decode_ms_p50": Metric("ms", "lower", "timing", 0.10,
                                "long context: one decode step, steady state, median over calls"),
        **twin("decode_ms_p50"),
        "kv_cache_bytes_held": Metric("bytes", "lower", "exact", 0.0,
                                      "long context: bytes the KV cache holds per sequence after generation"),
        "energy_j_per_token": Metric("J/token", "lower", "value", 0.20,
                                     "metered energy over the trace / output tokens (NVML or RAPL; never estimated)"),
        **COMMON,
    },
    headline=("model", "scenario", "scheduler", "load", "request_rate", "prompt_len", "cache", "status",
              "token_parity", "goodput", "ttft_ms_p90", "tpot_ms_p90", "requests_per_s", "max_rate_meeting",
              "rate_bracket_high", "ttft_ms", "decode_ms_p50", "kv_cache_bytes_held", "kv_cache_bytes_formula"),
    order=7,
    figures="bench.serving.figures:headline",
    charts="bench.serving.figures:charts",
)
