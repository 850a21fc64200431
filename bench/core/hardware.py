"""Capability probe, device parsing, synchronisation and memory statistics.

Everything that asks "can this machine do X?" lives here, so suites and the plugin never
test ``torch.cuda.is_available()`` themselves.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re

import torch

# The one declaration of dtype names: the precisions a case runs in, then fp64 (the reference).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
PRECISIONS = ("fp32", "bf16", "fp16")
LOW_PRECISION = {name: DTYPES[name] for name in PRECISIONS if name != "fp32"}  # autocast's dtypes
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    cuda: bool
    cuda_device_count: int
    cuda_names: tuple[str, ...]
    cuda_bf16: tuple[bool, ...]  # per CUDA device: native bf16 (compute capability >= 8.0)
    distributed: bool
    backends: tuple[str, ...]  # distributed backends this build offers: gloo, nccl, ...
    cpu_threads: int
    cpu_native: tuple[str, ...] = ()  # low-precision dtypes this CPU computes natively (bf16, fp16)
    cpu_capped: tuple[str, ...] = ()  # ... that its flags have and this process's ISA cap takes away

    def cpu_emulation_note(self, device: str, dtype: str) -> str | None:
        """A note when ``dtype`` on the CPU is emulated (converted through fp32), else None."""
        if device != "cpu" or dtype not in ("bf16", "fp16") or dtype in self.cpu_native:
            return None
        if dtype in self.cpu_capped:
            caps = ", ".join(f"{k}={os.environ[k]}" for k in ISA_CAPS if os.environ.get(k)) or "the ISA cap"
            return (f"emulated: this CPU has native {dtype} arithmetic, but this process's kernels are capped below "
                    f"it ({caps}); its speed is not the device's low-precision throughput")
        need = "AVX512-BF16 or AMX-BF16" if dtype == "bf16" else "AVX512-FP16 or AMX-FP16"
        return (f"emulated: this CPU has no native {dtype} arithmetic ({need}); its speed is not the device's "
                "low-precision throughput")

    def device_reason(self, device: str) -> str | None:
        """Why ``device`` cannot run here, or None when it can."""
        if device == "cpu":
            return None
        if not self.cuda:
            return "CUDA is not available on this machine (torch.cuda.is_available() is False)"
        index = cuda_index(device)
        if index >= self.cuda_device_count:
            return f"{device} requested but only {self.cuda_device_count} CUDA device(s) are present"
        return None

    def dtype_reason(self, device: str, dtype: str) -> str | None:
        """Why ``dtype`` cannot run on ``device`` here, or None when it can."""
        reason = self.device_reason(device)
        if reason:
            return reason
        if dtype not in DTYPES:
            return f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}"
        if device.startswith("cuda") and dtype == "bf16" and not self.cuda_bf16[cuda_index(device)]:
            return (f"{device} ({self.cuda_names[cuda_index(device)]}) has no native bf16 "
                    "(compute capability < 8.0; emulated bf16 is not benchmarked)")
        return None


def cuda_index(device: str | torch.device) -> int:
    """The index of a CUDA device string (``cuda`` alone is device 0)."""
    dev = torch.device(device)
    return dev.index or 0


def float8_capable(device: str) -> bool:
    """Whether ``device`` has float8 matmuls (``torch._scaled_mm``: CUDA compute capability 8.9+,
    Ada and Hopper on), the ones torchao's float8 inference and training call."""
    return device.startswith("cuda") and torch.cuda.is_available() and \
        torch.cuda.get_device_capability(torch.device(device)) >= (8, 9)


def _native_bf16(index: int) -> bool:
    # torch.cuda.is_bf16_supported() asks only the current device and, by default, counts
    # emulation on pre-Ampere GPUs; native bf16 tensor-core math needs sm_80 or newer.
    return torch.cuda.get_device_capability(index) >= (8, 0)


@functools.lru_cache(maxsize=1)
def probe() -> Capabilities:
    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    names = tuple(torch.cuda.get_device_name(i) for i in range(count))
    bf16 = tuple(_native_bf16(i) for i in range(count))
    dist_ok = torch.distributed.is_available()
    backends = []
    if dist_ok:
        if torch.distributed.is_gloo_available():
            backends.append("gloo")
        if torch.distributed.is_nccl_available() and cuda:
            backends.append("nccl")
    native = cpu_native_low_precision()
    uncapped = cpu_native_low_precision(capability="AVX512", onednn_isa="")  # the flags alone
    return Capabilities(cuda, count, names, bf16, dist_ok, tuple(backends), torch.get_num_threads(), native,
                        tuple(d for d in uncapped if d not in native))


# CPU flags (Linux /proc/cpuinfo names) that give native arithmetic per dtype: x86 AVX512-BF16,
# AMX-BF16, AVX512-FP16, AMX-FP16; Arm's BF16 extension (ARMv8.6) and half-precision SIMD.
NATIVE_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16", "bf16"), "fp16": ("avx512_fp16", "amx_fp16", "asimdhp")}


X86_LOW_PRECISION_FLAGS = {"avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16"}
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA, oneDNN's docs "CPU dispatcher control") that still allow its
# bf16 / fp16 kernels: anything at or above AVX512_CORE_BF16
_ONEDNN_LOW_PRECISION = ("BF16", "FP16", "AMX", "AVX10", "ALL", "DEFAULT")


def cpu_native_low_precision(cpuinfo: str | None = None, capability: str | None = None,
                             onednn_isa: str | None = None) -> tuple[str, ...]:
    """The low-precision dtypes this CPU computes natively *in this process*: its flags, unless
    the kernels that use them are capped away. ATen dispatches to its AVX-512 kernels only at
    capability AVX512 (``ATEN_CPU_CAPABILITY=avx2`` caps it; torch.backends.cpu.get_cpu_capability
    says which), oneDNN to its bf16 / fp16 kernels only when ``ONEDNN_MAX_CPU_ISA`` allows them:
    a capped run converts through fp32, as a CPU without the flags does."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return ()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            flags |= set(line.split(":", 1)[1].split())
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    onednn_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if onednn_isa is None else onednn_isa
    capped = not capability.upper().startswith("AVX512") or (
        onednn_isa and not any(k in onednn_isa.upper() for k in _ONEDNN_LOW_PRECISION))
    if capped:
        flags -= X86_LOW_PRECISION_FLAGS
    return tuple(d for d, names in NATIVE_FLAGS.items() if flags & set(names))


ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def separate_inductor_cache() -> str | None:
    """Under a CPU dispatch cap (ISA_CAPS set, how this suite reproduces a CPU without AVX-512),
    give Inductor an on-disk cache of its own, unless TORCHINDUCTOR_CACHE_DIR is set: its cache
    keys do not include the cap, and here a capped run that loaded kernels an uncapped run had
    compiled aborted (SIGABRT), as did an uncapped run loading capped ones (SIGSEGV). Returns the
    folder chosen, or None when nothing was changed."""
    caps = [f"{k.lower()}={os.environ[k]}" for k in ISA_CAPS if os.environ.get(k)]
    if not caps or os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return None
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    folder = f"{default_cache_dir()}-{'-'.join(re.sub(r'[^a-z0-9=._]', '', c.lower()) for c in caps)}"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder  # inherited by every child (torchrun ranks, isolation)
    return folder


def parse_devices(text: str, cuda_device_count: int | None = None, option: str = "--bench-device") -> list[str]:
    """Parse ``--bench-device`` (or another ``option``): a comma list of cpu, cuda, cuda:N.
    ``cuda`` means every visible CUDA device (cuda:0 when there is none, so its rows say why
    they are skipped). Raises ValueError."""
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise ValueError(f"{option} is empty; valid: cpu, cuda, cuda:N (comma separated)")
    for d in devices:
        if not _DEVICE_RE.match(d):
            raise ValueError(f"{option}: unknown device {d!r}; valid: cpu, cuda, cuda:N (comma separated)")
    count = probe().cuda_device_count if cuda_device_count is None else cuda_device_count
    out: list[str] = []
    for d in devices:
        out += [f"cuda:{i}" for i in range(max(count, 1))] if d == "cuda" else [d]
    return list(dict.fromkeys(out))


def default_devices() -> list[str]:
    """Every device that could matter: cpu plus each CUDA device present (cuda:0 when none,
    so the report says why CUDA rows are missing instead of silently omitting them)."""
    caps = probe()
    return ["cpu"] + [f"cuda:{i}" for i in range(max(caps.cuda_device_count, 1))]


def synchronize(device: str | torch.device) -> None:
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reset_peak_memory(device: str | torch.device) -> None:
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    elif _hwm_resettable():  # the first call probes by resetting; later calls reset here
        _reset_rss_high_water_mark()


def peak_memory_mib(device: str | torch.device) -> float | None:
    """CUDA: max allocated since the last reset. CPU: peak RSS (VmHWM) since the last reset
    of the high-water mark, or None where the kernel does not let us reset it. Two different
    quantities: rows name them apart with :func:`peak_memory_columns`."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return _rss_high_water_mark_mib() if _hwm_resettable() else None


def peak_memory_columns(device: str | torch.device) -> dict[str, float | None]:
    """Peak memory since the last reset, each figure under the name of what it measures:
    ``peak_rss_mib`` (process resident set, CPU rows), ``cuda_peak_allocated_mib`` (tensor
    bytes) and ``cuda_peak_reserved_mib`` (the caching allocator's pool) on CUDA rows.
    ``peak_mem_mib`` (the contract's column) repeats the one that applies to the device."""
    if torch.device(device).type == "cuda":
        allocated = peak_memory_mib(device)
        return {"peak_mem_mib": allocated, "cuda_peak_allocated_mib": allocated,
                "cuda_peak_reserved_mib": peak_reserved_mib(device), "peak_rss_mib": None}
    rss = peak_memory_mib(device)
    return {"peak_mem_mib": rss, "peak_rss_mib": rss, "cuda_peak_allocated_mib": None,
            "cuda_peak_reserved_mib": None}


def peak_reserved_mib(device: str | torch.device) -> float | None:
    """CUDA: max memory reserved by the caching allocator since the last reset."""
    dev = torch.device(device)
    return torch.cuda.max_memory_reserved(dev) / 2**20 if dev.type == "cuda" else None


def _reset_rss_high_water_mark() -> bool:
    # Writing "5" to clear_refs resets VmHWM to the current RSS (Linux >= 4.0). Without it
    # VmHWM is the lifetime maximum and would blame every case for the largest one before it.
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _hwm_resettable() -> bool:
    """Whether this kernel lets the process reset its RSS high-water mark (a machine fact)."""
    return _reset_rss_high_water_mark()


def _rss_high_water_mark_mib() -> float | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, a host MemoryError, or a RuntimeError saying out of memory."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory(device: str | torch.device) -> None:
    import gc

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
