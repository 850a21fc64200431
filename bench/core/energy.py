"""Metered energy, never estimated: NVIDIA's cumulative energy counter through NVML
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver loaded; Volta and later),
and on CPUs Linux's RAPL package counters (``/sys/class/powercap/intel-rapl:N/energy_uj``,
microjoules, wrapping at ``max_energy_range_uj``). Where neither is readable the reading says
why, and the row's column stays empty: a TDP times a duration is not a measurement.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

RAPL = "/sys/class/powercap/intel-rapl:*"


class Meter:
    """``start()`` then ``stop() -> joules`` (kept as ``joules``); ``why`` says what is missing
    when ``available`` is False (then ``stop()`` returns None)."""

    def __init__(self, device: str):
        self.device, self.why, self._read, self._wrap = str(device), None, None, None
        if self.device.startswith("cuda"):
            self._nvml()
        else:
            self._rapl()
        self._t0, self.joules = None, None

    @property
    def available(self) -> bool:
        return self._read is not None

    def _nvml(self) -> None:
        try:
            import pynvml  # nvidia-ml-py
            import torch

            pynvml.nvmlInit()
            index = torch.device(self.device).index or 0
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
            if visible[0] and all(v.strip().isdigit() for v in visible) and index < len(visible):
                index = int(visible[index])  # NVML counts every GPU; torch only the visible ones
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises where the GPU has no counter
            self._read = lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3  # mJ -> J
        except ImportError:
            self.why = "no energy meter: nvidia-ml-py (pynvml) is not installed"
        except Exception as exc:  # NVMLError_NotSupported, no driver
            self.why = f"no energy meter: NVML's energy counter is not readable ({type(exc).__name__}: {exc})"

    def _rapl(self) -> None:
        # the top-level zones only (intel-rapl:0, :1: one a package): their sub-zones (intel-rapl:0:0 core,
        # :0:1 uncore, :0:2 DRAM) are parts of the package's count and would count it twice
        zones = [Path(z) for z in sorted(glob.glob(RAPL)) if re.fullmatch(r"intel-rapl:\d+", Path(z).name)
                 and Path(z, "energy_uj").exists()]
        if not zones:
            self.why = ("no energy meter: no RAPL counters here (/sys/class/powercap/intel-rapl:* absent; "
                        "VMs rarely expose them)")
            return
        try:
            for z in zones:
                int((z / "energy_uj").read_text())
        except OSError as exc:  # root-only since CVE-2020-8694 on most kernels
            self.why = (f"no energy meter: RAPL counters not readable ({exc.strerror}; they are root-only on "
                        "most kernels)")
            return
        wraps = [int((z / "max_energy_range_uj").read_text()) if (z / "max_energy_range_uj").exists() else None
                 for z in zones]
        self._wrap = wraps
        self._read = lambda: [int((z / "energy_uj").read_text()) for z in zones]

    def start(self) -> None:
        self._t0 = self._read() if self._read else None

    def stop(self) -> float | None:
        if self._read is None or self._t0 is None:
            return None
        now = self._read()
        if isinstance(now, list):  # RAPL: package zones in microjoules, each may wrap once
            total = 0
            for a, b, wrap in zip(self._t0, now, self._wrap):
                total += b - a if b >= a or not wrap else b + wrap - a
            self.joules = total / 1e6
        else:
            self.joules = now - self._t0
        return self.joules
