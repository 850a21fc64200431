"""FLOP and byte counts of a call, measured roofs (GEMM TFLOP/s, copy GB/s) and the vendors'
dense peaks.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real call (no hand
formulas). Peaks are of two kinds (vendor figures are dense, not the 2:4-sparse ones a
datasheet headlines): a *measured* roof from a large-GEMM probe per device and dtype
(measured once per run by ``bench.core.session.Roofs``), and the
vendor's *dense* peak for GPUs known by name.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.core.hardware import DTYPES
from bench.core.timing import Budget, summarize_ms, time_callable

# Vendor dense peaks in TFLOP/s (no 2:4 sparsity: datasheets print the sparse figure for the
# tensor-core rows, marked "*"; the dense one is half of it). fp32 is the non-tensor-core
# figure: the suite leaves TF32 off unless the report's fingerprint says otherwise.
# Keyed by the exact name torch.cuda.get_device_name() reports. A GPU not listed gets no
# vendor peak (pct_of_vendor_peak stays empty) rather than a neighbour's figure.
_HOPPER_SXM = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}   # H100/H200 SXM datasheets
_HOPPER_NVL = {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}   # H100 NVL / H200 NVL datasheets
_A100 = {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}          # A100 datasheet (SXM and PCIe)
VENDOR_PEAK_TFLOPS = {
    "NVIDIA H200": _HOPPER_SXM,            # H200 datasheet, "H200 SXM" column
    "NVIDIA H200 NVL": _HOPPER_NVL,        # H200 datasheet, "H200 NVL" column
    "NVIDIA H100 80GB HBM3": _HOPPER_SXM,  # H100 datasheet, "H100 SXM" column
    "NVIDIA H100 NVL": _HOPPER_NVL,        # H100 datasheet, "H100 NVL" column
    "NVIDIA H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},  # H100 datasheet, PCIe
    "NVIDIA A100-SXM4-40GB": _A100,
    "NVIDIA A100-SXM4-80GB": _A100,
    "NVIDIA A100-PCIE-40GB": _A100,
    "NVIDIA A100 80GB PCIe": _A100,
    "NVIDIA L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},        # L4 datasheet
    "NVIDIA L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05},   # L40S datasheet
    "NVIDIA L40": {"fp32": 90.5, "tf32": 90.5, "bf16": 181.05, "fp16": 181.05},     # L40 datasheet
}


def vendor_peak_tflops(gpu_name: str | None, dtype: str) -> float | None:
    """The vendor's dense peak for exactly this GPU model, or None when it is not listed."""
    if not gpu_name:
        return None
    table = {k.upper(): v for k, v in VENDOR_PEAK_TFLOPS.items()}
    return (table.get(" ".join(gpu_name.split()).upper()) or {}).get(dtype)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (forward and, if it runs one, backward)."""
    return count_flops_and_bytes(fn)[0]


def count_flops_and_bytes(fn: Callable[[], Any]) -> tuple[int, int]:
    """FLOPs and bytes moved by one call of ``fn``.

    Bytes are estimated per aten op as the sizes of the tensors it reads and writes (its
    tensor arguments and outputs; ops whose output aliases an input, i.e. views, move
    nothing). That is the traffic of unfused kernels with no cache reuse: an upper bound on
    DRAM traffic, so the arithmetic intensity (FLOPs / bytes) is a lower bound."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    moved = [0]

    class ByteCounter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            storages = {t.untyped_storage().data_ptr() for t in ins if t.numel()}
            if not any(t.numel() and t.untyped_storage().data_ptr() in storages for t in outs):
                moved[0] += sum(t.numel() * t.element_size() for t in ins + outs)
            return out

    with FlopCounterMode(display=False) as counter, ByteCounter():
        fn()
    return int(counter.get_total_flops()), moved[0]


def measured_bandwidth(device: str, mib: int | None = None, rounds: int = 10) -> dict:
    """The measured memory roof: a large tensor copy (read + write), GB/s from the median."""
    mib = mib or (1024 if torch.device(device).type == "cuda" else 256)
    src = torch.empty(mib * 2**20 // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    samples = time_callable(lambda: dst.copy_(src), device, Budget.fixed(rounds, warmup_rounds=2))
    median_ms = summarize_ms(samples)["median_ms"]
    gbs = 2 * src.numel() * 4 / (median_ms / 1e3) / 1e9
    return {"device": device, "mib": mib, "median_ms": median_ms, "gb_per_s": gbs}


def gemm_size(device: str) -> int:
    return 8192 if torch.device(device).type == "cuda" else 1024


# A kernel whose first calls are this many times slower than the fastest kernel's cannot set the
# roof: it is not timed further (an emulated bf16 torch.mm at AVX2 runs 0.86 s a call where
# F.linear, which oneDNN serves, runs 0.04 s: 30 rounds of it would cost half a minute, twice a run).
ROOF_OUT_OF_RACE = 3.0


def _gemm_kernels(device: str, dtype: str, n: int) -> dict[str, Callable]:
    """The GEMM paths the suite's models take, on n x n operands: ``torch.mm``, and a linear
    layer's ``x @ W.T`` with and without bias (``F.linear``: addmm on a transposed weight,
    which BLAS libraries may serve with another, faster kernel than mm's)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a, w = (torch.randn(n, n, generator=gen).to(device=device, dtype=DTYPES[dtype]) for _ in range(2))
    bias = torch.randn(n, generator=gen).to(device=device, dtype=DTYPES[dtype])
    return {"mm": lambda: torch.mm(a, w), "linear": lambda: torch.nn.functional.linear(a, w),
            "linear+bias": lambda: torch.nn.functional.linear(a, w, bias)}


ROOF_BLOCKS = 3  # blocks per kernel: the roof is the best block's median, so one loaded moment cannot set it


def measured_peak(device: str, dtype: str, n: int | None = None, rounds: int = 8) -> dict:
    """The measured GEMM roof: the fastest of the kernels the models use (``_gemm_kernels``),
    each timed in ``ROOF_BLOCKS`` interleaved blocks with the suite's own timing; the roof is
    the best block median (a busy moment slows a block, it cannot speed one up). Returns
    tflops, the kernel that set it and the spread of block medians."""
    n = n or gemm_size(device)
    flops = 2 * n**3
    kernels = _gemm_kernels(device, dtype, n)
    first = {name: min(time_callable(fn, device, Budget.fixed(2))) for name, fn in kernels.items()}
    kernels = {k: fn for k, fn in kernels.items() if first[k] <= ROOF_OUT_OF_RACE * min(first.values())}
    medians: dict[str, list[float]] = {k: [] for k in kernels}
    for block in range(ROOF_BLOCKS):
        for name, fn in kernels.items():
            samples = time_callable(fn, device, Budget.fixed(rounds, warmup_rounds=2),
                                    min_warmup_s=0.5 if block == 0 else 0.0)
            medians[name].append(summarize_ms(samples)["median_ms"])
    kernel = min(medians, key=lambda k: min(medians[k]))
    median_ms = min(medians[kernel])
    return {"device": device, "dtype": dtype, "n": n, "flops": flops, "median_ms": median_ms,
            "tflops": flops / (median_ms / 1e3) / 1e12, "kernel": kernel,
            "block_spread": max(medians[kernel]) / median_ms,
            "kernel_tflops": {k: round(flops / (min(v) / 1e3) / 1e12, 4) for k, v in medians.items()},
            "out_of_race": {k: round(flops / t / 1e12, 4) for k, t in first.items() if k not in medians}}


def peak_with_reference(device: str, dtype: str, n: int | None = None) -> dict:
    """The roof the reports use (``measured_peak``: the fastest of the models' GEMM kernels),
    plus torch.utils.benchmark's timing of the kernel that set it, interleaved with the suite's
    own clock, and their ratio."""
    from bench.core.timing import interleaved_check

    roof = measured_peak(device, dtype, n)
    check = interleaved_check(_gemm_kernels(device, dtype, roof["n"])[roof["kernel"]], device)
    return {**roof, "reference_median_ms": check["timer_median_ms"],
            "reference_tflops": roof["flops"] / (check["timer_median_ms"] / 1e3) / 1e12, "ratio": check["ratio"]}
