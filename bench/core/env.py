"""Environment fingerprint: everything that changes speed or numerics (versions, TF32, cudnn.benchmark, allocator).

Added to pytest-benchmark's machine_info, so every results file says where it came from,
and compared by ``python -m bench compare`` to warn when two runs are not like for like.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import subprocess

import torch

from bench.core.hardware import probe
from bench.core.machine import cpu_model, hardware
from bench.core.numerics import float32_matmul_precision, tf32_state
from bench.core.reference import identity as reference_identity


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint(learned: dict | None = None) -> dict:
    """This machine and software stack, plus what the run learned (``Session.learned()``)."""
    cuda = torch.cuda.is_available()
    nccl = None
    if cuda and torch.distributed.is_available() and torch.distributed.is_nccl_available():
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "nccl": nccl,
        "driver": _driver() if cuda else None,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu_model": cpu_model(),
        # the hardware as the machine (not this torch) sees it: what makes two runs comparable
        "hardware": hardware(),
        "reference": reference_identity(),  # what the *_norm twins' reference depends on (bench.core.reference)
        "cpu_cores": os.cpu_count(),
        "cpu_native_low_precision": list(probe().cpu_native),
        # the ISA ATen dispatches to (capped by ATEN_CPU_CAPABILITY), and the caps on oneDNN / MKL:
        # a run capped at AVX2 on an AVX-512 machine times another machine's kernels
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_isa_caps": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                    "MKL_ENABLE_INSTRUCTIONS") if os.environ.get(k)},
        "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "transformers": _version("transformers"),
        "datasets": _version("datasets"),
        "accelerate": _version("accelerate"),
        "triton": _version("triton") or _version("pytorch-triton"),
        "numpy": _version("numpy"),
        "pytest_benchmark": _version("pytest-benchmark"),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        **tf32_state(),
        "float32_matmul_precision": float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "allocator": {k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "GLIBC_TUNABLES", "OMP_NUM_THREADS",
                                                     "CUDA_VISIBLE_DEVICES", "MKL_NUM_THREADS")
                      if os.environ.get(k)},
        **(learned or {}),  # what the run learned: weights, measured roofs (Session.learned)
    }


def safe_fingerprint(learned: dict | None = None) -> dict:
    """``fingerprint``, or where reading the environment itself fails (a setting that raises
    when read, a broken driver query) a one-key dict that says why: the run's report must
    still be written."""
    try:
        return fingerprint(learned)
    except Exception as exc:  # noqa: BLE001 -- anything here would cost the run its report
        out = {"fingerprint_error": f"environment fingerprint failed ({type(exc).__name__}: {str(exc)[:200]})",
               **(learned or {})}
        with contextlib.suppress(Exception):  # the machine's identity does not depend on the stack that failed
            out["hardware"] = hardware()
        return out
