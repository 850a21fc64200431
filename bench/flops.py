"""FLOPs and peaks.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real call (no hand
formulas). Peaks are of two kinds (PITFALLS 11): a *measured* roof from a large-GEMM probe
per device and dtype, and the vendor's *dense* peak for GPUs known by name.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import env
from bench.devices import DTYPES
from bench.timing import Budget, summarize_ms, time_callable

# Vendor dense peaks in TFLOP/s (no 2:4 sparsity). fp32 is the non-tensor-core figure: the
# suite leaves TF32 off unless the report's fingerprint says otherwise.
VENDOR_PEAK_TFLOPS = {
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H100 SXM": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
}


def vendor_peak_tflops(gpu_name: str | None, dtype: str) -> float | None:
    if not gpu_name:
        return None
    name = gpu_name.upper()
    for key in sorted(VENDOR_PEAK_TFLOPS, key=len, reverse=True):
        parts = key.upper().split()
        if all(p in name for p in parts) or (key == "H100 SXM" and "H100" in name and "PCIE" not in name):
            return VENDOR_PEAK_TFLOPS[key].get(dtype)
    return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (forward and, if it runs one, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def gemm_size(device: str) -> int:
    return 8192 if torch.device(device).type == "cuda" else 1024


def _gemm(device: str, dtype: str, n: int):
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=DTYPES[dtype])
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=DTYPES[dtype])
    return (lambda: torch.mm(a, b)), 2 * n**3


@functools.lru_cache(maxsize=None)
def measured_peak(device: str, dtype: str, n: int | None = None, rounds: int = 20) -> dict:
    """The measured GEMM roof: an n x n x n matmul timed with the suite's own timing.
    Returns tflops (from the median) and the raw figures."""
    n = n or gemm_size(device)
    fn, flops = _gemm(device, dtype, n)
    samples = time_callable(fn, device, Budget(warmup_rounds=2, rounds=rounds), min_warmup_s=0.5)
    median_ms = summarize_ms(samples)["median_ms"]
    tflops = flops / (median_ms / 1e3) / 1e12
    env.MEASURED_PEAKS_TFLOPS[f"{device}/{dtype}/n={n}"] = round(tflops, 4)
    return {"device": device, "dtype": dtype, "n": n, "flops": flops, "median_ms": median_ms, "tflops": tflops}


def peak_with_reference(device: str, dtype: str, n: int | None = None) -> dict:
    """The roof, plus torch.utils.benchmark's timing of the same GEMM, interleaved with
    the suite's own, and their ratio."""
    from bench.timing import interleaved_check

    n = n or gemm_size(device)
    fn, flops = _gemm(device, dtype, n)
    check = interleaved_check(fn, device)
    return {"device": device, "dtype": dtype, "n": n, "flops": flops, "median_ms": check["suite_median_ms"],
            "tflops": flops / (check["suite_median_ms"] / 1e3) / 1e12,
            "reference_median_ms": check["timer_median_ms"],
            "reference_tflops": flops / (check["timer_median_ms"] / 1e3) / 1e12, "ratio": check["ratio"]}
