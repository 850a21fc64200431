"""The graph_modes question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import COMMON, INSTRUCTIONS, Metric, twin
from bench.core.question import Question

QUESTION = Question(
    name="graph_modes",
    summary=(
        "do TorchScript (script, trace), torch.compile and torch.export graphs compute what eager "
        "computes, and what does each buy?"
    ),
    suite_file="suites/test_graph_modes.py",
    scenario="bench.graphs.scenario",
    columns=("model", "mode", "device", "dtype", "phase", "status", "reason", "max_abs_err", "median_ms", "p90_ms",
             "speedup_vs_eager", "build_s", "graph_breaks", "peak_mem_mib"),
    metrics={
        "median_ms": Metric("ms", "lower", "timing", 0.10, "one call of the mode's graph, median"),
        **twin("median_ms"),
        "speedup_vs_eager": Metric("x", "higher", "value", 0.10, "eager time / mode time, interleaved"),
        "build_s": Metric("s", "lower", "value", 0.50, "build time (compile: first call); cache-dependent"),
        "graph_breaks": Metric("count", "lower", "exact", 0.0, "torch._dynamo graph breaks"),
        **INSTRUCTIONS,
        "recompiles": Metric("count", "lower", "exact", 0.0, "frames compiled again for the probe inputs"),
        **COMMON,
    },
    headline=("model", "mode", "device", "phase", "status", "max_abs_err", "median_ms", "speedup_vs_eager"),
    order=1,
    errors=("max_abs_err",),
)
