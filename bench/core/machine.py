"""The machine's identity, read from the hardware and never from the torch under test.

Two runs are comparable when they ran on the same hardware. If that identity came from torch
(``torch.cuda.device_count()``, ``get_device_name``), an upgrade whose torch cannot see the
GPU (a CPU wheel, a driver mismatch) would look like "another machine" and be refused instead
of being called what it is: the new stack lost the GPU. So the CPU comes from ``/proc/cpuinfo``
and the GPUs from the driver (``nvidia-smi -L``), else the kernel's view of the driver
(``/proc/driver/nvidia/gpus``), else the PCI bus (display and 3D controllers of the GPU
vendors under ``/sys/bus/pci/devices``; PCI class codes: PCI-SIG, "PCI Code and ID Assignment
Specification", class 03h).
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

# PCI vendor ids of GPU makers (the PCI ID repository, https://pci-ids.ucw.cz/): NVIDIA, AMD, Intel
GPU_VENDORS = {"0x10de": "NVIDIA", "0x1002": "AMD", "0x8086": "Intel"}
_DISPLAY_CLASSES = ("0x0300", "0x0302", "0x0380")  # VGA, 3D controller, other display controller


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> list[str] | None:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=15, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [ln.split(":", 1)[1].split("(UUID", 1)[0].strip() for ln in out.stdout.splitlines()
             if ln.startswith("GPU ") and ":" in ln]
    return names or None


def _proc_nvidia(root: Path = Path("/proc/driver/nvidia/gpus")) -> list[str] | None:
    names = []
    for info in sorted(root.glob("*/information")) if root.is_dir() else ():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                names.append(line.split(":", 1)[1].strip())
    return names or None


def _pci(root: Path = Path("/sys/bus/pci/devices")) -> list[str] | None:
    """GPUs on the PCI bus as "<vendor> PCI <vendor id>:<device id>" (no name without the driver)."""
    found = []
    for dev in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            cls, vendor = (dev / "class").read_text().strip(), (dev / "vendor").read_text().strip()
            device = (dev / "device").read_text().strip()
        except OSError:
            continue
        if cls.startswith(_DISPLAY_CLASSES) and vendor in GPU_VENDORS and not (vendor == "0x8086" and
                                                                              cls.startswith("0x0300")):
            found.append(f"{GPU_VENDORS[vendor]} PCI {vendor[2:]}:{device[2:]}")
    return found or None


@functools.lru_cache(maxsize=1)
def hardware() -> dict:
    """``{"cpu_model", "cpu_cores", "gpus": [names], "gpus_from": source}`` of this machine,
    whatever torch is installed (Intel integrated graphics are not counted as a GPU)."""
    gpus, source = [], "none found (nvidia-smi, /proc/driver/nvidia, PCI bus)"
    for reader, name in ((_nvidia_smi, "nvidia-smi -L"), (_proc_nvidia, "/proc/driver/nvidia/gpus"),
                         (_pci, "PCI bus")):
        got = reader()
        if got:
            gpus, source = got, name
            break
    return {"cpu_model": cpu_model(), "cpu_cores": os.cpu_count(), "gpus": gpus, "gpus_from": source}


def identity(hw: dict) -> str:
    """One line naming the hardware: CPU model and cores, GPU count and models."""
    cpu = f"{hw.get('cpu_model') or 'unknown CPU'} x{hw.get('cpu_cores') or '?'}"
    gpus = [str(g) for g in hw.get("gpus") or []]
    return cpu + (f" + {len(gpus)} GPU(s) {', '.join(sorted(set(gpus)))}" if gpus else "")
