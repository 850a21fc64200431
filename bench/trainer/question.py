"""The trainer question's declaration (``bench.core.question``): its CSV columns, judged metrics
and report table."""

from bench.core.metrics import Metric
from bench.core.question import Question

QUESTION = Question(
    name="trainer",
    summary="how fast does the Hugging Face Trainer fine-tune (and the plain loop), and does the model learn?",
    suite_file="suites/test_trainer.py",
    scenario="bench.trainer.scenario",
    columns=("model", "precision", "batch_size", "grad_accum", "compile", "optim", "strategy", "checkpointing",
             "status", "reason", "samples_per_s", "tokens_per_s", "step_ms_p50", "step_ms_p95", "warmup_s",
             "train_runtime_s", "loss_first", "loss_last", "eval_accuracy", "time_to_accuracy_s", "mfu_pct"),
    metrics={
        "step_ms_p50": Metric("ms", "lower", "timing", 0.10, "optimizer step, steady state, median"),
        "samples_per_s": Metric("samples/s", "higher", "derived", doc="steady samples / steady time"),
        "tokens_per_s": Metric("tokens/s", "higher", "derived", doc="non-padding tokens of all ranks / time"),
        "mfu_pct": Metric("%", "higher", "derived", doc="achieved FLOP/s / measured roof of all devices used"),
        "warmup_s": Metric("s", "lower", "value", 0.50, "first steps (compilation, allocator warm-up)"),
        "loss_last": Metric("loss", "lower", "value", 0.25, "training loss at the last step"),
        "eval_accuracy": Metric("accuracy", "higher", "exact", 0.02, "accuracy on the held-out split"),
        "time_to_accuracy_s": Metric("s", "lower", "value", 0.50, "training time to the target accuracy"),
    },
    headline=("model", "runner", "device", "precision", "batch_size", "grad_accum", "world_size", "optim", "status",
              "samples_per_s", "step_ms_p50", "loss_first", "loss_last", "eval_accuracy", "mfu_pct"),
    order=4,
)
