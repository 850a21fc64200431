"""One run's state: its settings, the roofs it measured, the weights it ran and results that
several rows share (a model's parity results, DDP baselines). The pytest plugin owns one per
pytest session (fixture ``bench_session``); a script makes its own. Nothing of it lives at
module level, so two sessions in one process never see each other's state."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from bench.core.profiles import Profile, Settings, settings

MINIFIER_BUDGET_S = 900.0  # all of one run's compile minifications together (bench.graphs.minify)


class Roofs:
    """The hardware roofs one run measured: GEMM TFLOP/s per device and dtype, copy GB/s per
    device. Each is measured once, on first use, and listed in the report's environment."""

    def __init__(self) -> None:
        self.peaks_tflops: dict[str, float] = {}
        self.bandwidth_gbs: dict[str, float] = {}
        self._measured: dict[tuple, dict] = {}

    def peak(self, device: str, dtype: str) -> dict:
        """``bench.core.flops.measured_peak`` for (device, dtype), measured once."""
        key = ("peak", device, dtype)
        if key not in self._measured:
            from bench.core import flops

            found = self._measured[key] = flops.measured_peak(device, dtype)
            kernel = f"/{found['kernel']}" if found.get("kernel") else ""
            self.peaks_tflops[f"{device}/{dtype}/n={found.get('n')}{kernel}"] = round(found["tflops"], 4)
        return self._measured[key]

    def recheck(self, moved_by: float = 0.15) -> list[str]:
        """Measure every GEMM roof of this run again (at its end): a roof that moved by more
        than ``moved_by`` between the start and the end is a note (the rows' percentages were
        computed against the first)."""
        from bench.core import flops

        notes = []
        for key, first in list(self._measured.items()):
            if key[0] != "peak":
                continue
            again = flops.measured_peak(key[1], key[2], first.get("n"))
            ratio = again["tflops"] / first["tflops"]
            if abs(ratio - 1) > moved_by:
                notes.append(f"the {key[1]} {key[2]} GEMM roof moved from {first['tflops']:.4g} to "
                             f"{again['tflops']:.4g} TFLOP/s between the start and the end of the run "
                             f"({ratio:.2f}x): the machine's speed changed; percentages of the roof are uncertain")
            first["tflops_at_end"] = again["tflops"]
        return notes

    def bandwidth(self, device: str) -> dict:
        """``bench.core.flops.measured_bandwidth`` for ``device``, measured once."""
        key = ("bandwidth", device)
        if key not in self._measured:
            from bench.core import flops

            found = self._measured[key] = flops.measured_bandwidth(device)
            self.bandwidth_gbs[f"{device}/copy={found.get('mib')}MiB"] = round(found["gb_per_s"], 2)
        return self._measured[key]


@dataclasses.dataclass
class Session:
    """One run: ``Session()`` is the standard profile on this machine's devices."""

    settings: Settings = dataclasses.field(default_factory=settings)
    roofs: Roofs = dataclasses.field(default_factory=Roofs)
    model_hashes: dict[str, str] = dataclasses.field(default_factory=dict)
    out_dir: Path | None = None          # the run's report folder: files rows point to (repros)
    minifier_budget_s: float = MINIFIER_BUDGET_S  # what is left of it
    _shared: dict = dataclasses.field(default_factory=dict, repr=False)
    _counter: Any = dataclasses.field(default=None, repr=False)

    def instruction_counter(self):
        """The run's one callgrind child (``bench.core.callgrind``), started on first use."""
        if self._counter is None:
            from bench.core.callgrind import InstructionCounter

            self._counter = InstructionCounter()
        return self._counter

    def close(self) -> None:
        """End what the run started (the callgrind child)."""
        if self._counter is not None:
            self._counter.close()

    @property
    def profile(self) -> Profile:
        return self.settings.profile

    @property
    def devices(self) -> tuple[str, ...]:
        return self.settings.devices

    def shared(self, key: Hashable, make: Callable[[], Any], slot: str | None = None) -> Any:
        """``make()``, computed once per session under ``key`` (results several rows use).
        With ``slot``, only the latest key of that slot is kept: the previous value (a model
        and its compiled graphs, say) is released before the next one is made."""
        if slot is None:
            if key not in self._shared:
                self._shared[key] = make()
            return self._shared[key]
        held = self._shared.get(("slot", slot))
        if held is not None and held[0] == key:
            return held[1]
        del held  # no reference left to the previous value while the next one is made
        self._shared.pop(("slot", slot), None)
        value = make()
        self._shared[("slot", slot)] = (key, value)
        return value

    def offer(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key`` unless one is kept already (a row's own measurement
        doubling as a shared one: one measurement, not two)."""
        self._shared.setdefault(key, value)

    def record_weights(self, name: str, folder: str | Path,
                       describe: Callable[[str, Path], str | None] | None = None) -> str | None:
        """Hash ``folder``'s model.safetensors and list it under ``name`` in the report's
        environment, once per name; returns what is recorded (None: no safetensors file).
        ``describe(name, folder)`` may add to the hash (a model module's check against the
        upstream weights)."""
        from bench.core.files import weights_sha256

        if name not in self.model_hashes:
            folder = Path(folder).expanduser()
            described = describe(name, folder) if describe else weights_sha256(folder)
            if described is None:
                return None
            self.model_hashes[name] = described
        return self.model_hashes[name]

    def learned(self) -> dict:
        """What this run measured about its machine and weights, and the one setting that
        changes what a row measures without changing its case (the compile backend): for the
        fingerprint, so ``compare`` lists a difference."""
        counted = {"callgrind_instrumentation": self._counter.mode} if self._counter else {}
        return {**counted, "compile_backend": self.settings.compile_backend,
                "model_hashes": dict(self.model_hashes),
                "measured_peaks_tflops": dict(self.roofs.peaks_tflops),
                "measured_bandwidth_gbs": dict(self.roofs.bandwidth_gbs)}
