"""The sharded question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import Metric
from bench.core.question import Question

QUESTION = Question(
    name="sharded",
    summary=(
        "do FSDP2, DDP, tensor parallelism and activation checkpointing train a decoder step for step like one "
        "process, at "
        "what memory and speed?"
    ),
    suite_file="suites/test_sharded.py",
    scenario="bench.sharded.scenario",
    columns=("model", "strategy", "world_size", "checkpointing", "mp", "device", "status", "reason", "step_ms_p50",
             "tokens_per_s", "loss_max_abs_diff", "param_max_abs_diff", "update_rel_err_max", "grad_max_abs_diff",
             "param_bytes_per_rank", "optimizer_bytes_per_rank", "sharded_fraction", "step_peak_bytes",
             "step_peak_fraction", "step_time_vs_no_checkpoint", "comm_share_est", "peak_rss_mib_max_rank"),
    metrics={
        "step_ms_p50": Metric("ms", "lower", "timing", 0.10, "training step, slowest rank, median"),
        "tokens_per_s": Metric("tokens/s", "higher", "derived", doc="global batch tokens / mean steady step"),
        "param_bytes_per_rank": Metric("bytes", "lower", "exact", 0.0, "parameter bytes one rank holds"),
        "grad_bytes_per_rank": Metric("bytes", "lower", "exact", 0.0, "gradient bytes one rank holds"),
        "optimizer_bytes_per_rank": Metric(
            "bytes", "lower", "exact", 0.0, "optimizer state bytes one rank holds (SGD momentum)"
        ),
        "step_peak_bytes": Metric(
            "bytes",
            "lower",
            "value",
            0.10,
            "peak allocator bytes of one forward + "
            "backward above its start (profiler memory events) of the unwrapped model "
            "on rank 0's shard of the batch, with the row's checkpointing",
        ),
        "step_time_vs_no_checkpoint": Metric(
            "ratio", "lower", "value", 0.25, "checkpointed step / plain step, interleaved medians (in-process rows)"
        ),
        "comm_share_est": Metric(
            "fraction",
            "lower",
            "value",
            0.25,
            "ESTIMATE, not a trace: 1 - rank 0's unwrapped step on its shard / the sharded step of the slowest rank",
        ),
        "peak_rss_mib_max_rank": Metric("MiB", "lower", "value", 0.25, "peak RSS of the largest rank (CPU)"),
        "graph_breaks": Metric("count", "lower", "exact", 0.0, "compiled rows: graph breaks in the layers"),
        "recompiles": Metric("count", "lower", "exact", 0.0, "compiled rows: frames compiled after the first step"),
        "build_s": Metric("s", "lower", "value", 0.5, "compiled rows: first step over the steady median"),
    },
    headline=("model", "strategy", "world_size", "checkpointing", "mp", "device", "status", "step_ms_p50",
              "tokens_per_s", "loss_max_abs_diff", "param_bytes_per_rank", "step_peak_fraction",
              "step_time_vs_no_checkpoint"),
    order=5,
    errors=("loss_max_abs_diff", "param_max_abs_diff", "update_rel_err_max", "grad_max_abs_diff"),
)
