"""The vocabulary of judged numbers: ``Metric`` (unit, which way is better, kind, threshold)
and the metrics several questions share (instruction counts, peak memory, the ``*_norm``
twin of a timing). Each question declares its own in its ``question`` module."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    """A numeric column that ``compare`` and ``history`` judge.

    kind: ``timing`` (the benchmark's raw samples back it: the per-run statistic is their
    median), ``value`` (one number per run), ``derived`` (computed from the timing column
    of the same row, e.g. samples/s: shown, judged through that column, never counted
    twice), ``exact`` (deterministic: any change toward worse counts), ``counted`` (a count
    that repeats within a measured band ``noise``, relative: instructions under callgrind;
    judged from one run a side).
    threshold: the relative change that matters (0.10 = 10 %); smaller changes are "same"
    however significant. For ``exact`` metrics it is an absolute step.
    """

    unit: str
    better: str  # "lower" or "higher"
    kind: str = "value"
    threshold: float = 0.10
    doc: str = ""
    noise: float = 0.0  # ``counted``: the measured relative spread of repeated counts (A/A)
    # the measuring channel behind it (``bench_run.channels``): a run that did not have the channel
    # on has no value to lose; "wall_time" is always on
    channel: str = "wall_time"

    @property
    def moved_by_load(self) -> bool:
        """Whether other processes on the machine can move it: not a deterministic count
        (``exact``) nor a count under callgrind (``counted``)."""
        return self.kind not in ("exact", "counted")


# Instructions per call under callgrind (bench.core.callgrind). The threshold is PyTorch's own
# for its instruction-count gates (benchmarks/dynamo/pr_time_benchmarks: +/-1.5 %); the noise
# band is the A/A spread measured here across processes and runs (docs/verdicts.md, "Instruction counts").
INSTRUCTIONS_NOISE = 0.005
INSTRUCTIONS = {
    "instructions": Metric("instructions", "lower", "counted", 0.015,
                           "instructions per call under callgrind, one intra-op thread, loop subtracted",
                           noise=INSTRUCTIONS_NOISE, channel="instructions"),
}


def twin(column: str) -> dict[str, Metric]:
    """The normalised twin of a timing column: its value over the torch-independent reference
    timed with it (``bench.core.reference``), judged as a metric of its own."""
    return {f"{column}_norm": Metric("x reference", "lower", "value", 0.10,
                                     f"{column} / the reference timed with it (machine state cancelled)",
                                     channel="reference")}


# peak_mem_mib (the contract's column) repeats one of these per device: judged through them.
COMMON = {
    "peak_rss_mib": Metric(
        "MiB", "lower", "value", 0.25, "peak resident set of the whole process (CPU rows): mostly libraries, so coarse"
    ),
    "cuda_peak_allocated_mib": Metric("MiB", "lower", "value", 0.05, "peak bytes held by tensors (CUDA rows)"),
    "cuda_peak_reserved_mib": Metric("MiB", "lower", "value", 0.10, "peak CUDA caching-allocator pool"),
}


# A plain pytest-benchmark entry (no bench row): judged by its median.
TIMING_OTHER = Metric("ms", "lower", "timing", 0.10, "pytest-benchmark median (a benchmark without bench row)")
