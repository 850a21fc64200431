"""The ddp question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import Metric
from bench.core.question import Question

QUESTION = Question(
    name="ddp",
    summary="does DistributedDataParallel train like one process, and how does its throughput scale with ranks?",
    suite_file="suites/test_ddp.py",
    scenario="bench.distributed.scenario",
    columns=("model", "backend", "world_size", "threads_per_rank", "status", "reason", "step_ms_p50", "step_ms_p90",
             "samples_per_s", "scaling_efficiency", "comm_share", "grad_max_abs_diff"),
    metrics={
        "step_ms_p50": Metric("ms", "lower", "timing", 0.10, "training step, slowest rank, median"),
        "samples_per_s": Metric("samples/s", "higher", "derived", doc="global samples / summed step time"),
        "scaling_efficiency": Metric(
            "ratio", "higher", "value", 0.15, "samples/s / (world size x no-DDP samples/s on the same device)"
        ),
        "comm_share": Metric(
            "fraction", "lower", "value", 0.25, "ESTIMATE, not a trace: 1 - no_sync step time / synced step time"
        ),
    },
    headline=("model", "backend", "world_size", "status", "step_ms_p50", "samples_per_s", "scaling_efficiency",
              "grad_max_abs_diff"),
    order=3,
    errors=("grad_max_abs_diff", "param_max_abs_diff_across_ranks"),
)
