"""The devices question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import COMMON, INSTRUCTIONS, Metric, twin
from bench.core.question import Question

QUESTION = Question(
    name="devices",
    summary=(
        "how fast is each model on each device and precision, against an fp64 reference, "
        "and how close to the hardware's roof?"
    ),
    suite_file="suites/test_devices.py",
    scenario="bench.devices.scenario",
    columns=("model", "device", "dtype", "phase", "batch_size", "status", "reason", "median_ms", "p90_ms", "p99_ms",
             "samples_per_s", "tokens_per_s", "tflops", "pct_of_peak", "pct_of_vendor_peak", "peak_mem_mib",
             "speedup_vs_cpu"),
    metrics={
        "median_ms": Metric("ms", "lower", "timing", 0.10, "one step (inference or train), median"),
        **twin("median_ms"),
        "samples_per_s": Metric("samples/s", "higher", "derived", doc="batch size / median step time"),
        "tokens_per_s": Metric("tokens/s", "higher", "derived", doc="non-padding tokens / median step time"),
        "tflops": Metric("TFLOP/s", "higher", "derived", doc="counted FLOPs / median step time"),
        "pct_of_peak": Metric("%", "higher", "derived", doc="tflops / measured GEMM roof"),
        "pct_of_vendor_peak": Metric("%", "higher", "derived", doc="tflops / vendor dense peak"),
        **INSTRUCTIONS,
        **COMMON,
    },
    headline=("model", "device", "dtype", "phase", "batch_size", "status", "median_ms", "samples_per_s", "tflops",
              "pct_of_peak"),
    order=2,
    errors=("rel_err_vs_fp64",),
)
