"""The autograd_ops question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import INSTRUCTIONS, INSTRUCTIONS_NOISE, Metric, twin
from bench.core.question import Question

QUESTION = Question(
    name="autograd_ops",
    summary=(
        "do custom autograd ops compute the right values and gradients (against fp64), and how fast are "
        "they against their native composite?"
    ),
    suite_file="suites/test_autograd_ops.py",
    scenario="bench.ops.scenario",
    columns=("op", "device", "dtype", "status", "reason", "checks_passed", "fwd_bwd_median_ms", "native_median_ms",
             "speedup_vs_native"),
    metrics={
        "fwd_bwd_median_ms": Metric("ms", "lower", "timing", 0.10, "custom op forward+backward, median"),
        **twin("fwd_bwd_median_ms"),
        "speedup_vs_native": Metric("x", "higher", "value", 0.10, "native composite time / op time, interleaved"),
        **INSTRUCTIONS,
        "native_instructions": Metric(
            "instructions",
            "lower",
            "counted",
            0.015,
            "the native composite's instructions per call under callgrind",
            noise=INSTRUCTIONS_NOISE,
            channel="instructions",
        ),
    },
    headline=("op", "device", "dtype", "status", "checks_passed", "fwd_bwd_median_ms", "speedup_vs_native"),
    order=0,
)
