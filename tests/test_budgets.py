"""Time budgets: a case is timed for about its profile's time, not a fixed count of rounds;
a slow call stops at the minimum rounds and says so; emulated low precision is named."""
import time

import pytest

from bench.core.hardware import Capabilities, cpu_native_low_precision
from bench.core.timing import Budget, run_benchmark, time_callable


def test_a_slow_call_stops_at_its_budget_with_the_minimum_rounds_and_records_them():
    budget = Budget(measure_s=0.2, min_rounds=3, max_rounds=50, warmup_s=0.05, warmup_rounds=1)
    record: dict = {}
    t0 = time.perf_counter()
    samples = time_callable(lambda: time.sleep(0.15), "cpu", budget, record=record)
    wall = time.perf_counter() - t0
    assert len(samples) == 3 and record["rounds_planned"] == 3 and record["warmup_rounds"] == 1
    assert "minimum" in record["budget_note"] and record["call_ms_estimate"] == pytest.approx(150, rel=0.3)
    assert wall < 4 * 0.15 + 0.3  # one warm-up call and the three rounds, nothing more


def test_a_fast_call_gets_rounds_up_to_its_time_and_the_cap():
    budget = Budget(measure_s=0.2, min_rounds=3, max_rounds=40, warmup_s=0.05)
    record: dict = {}
    samples = time_callable(lambda: time.sleep(0.01), "cpu", budget, record=record)
    assert 10 <= len(samples) <= 22 and "budget_note" not in record  # about 0.2 s / 10 ms
    assert len(time_callable(lambda: None, "cpu", budget)) == 40  # a no-op stops at max_rounds


def test_fixed_budgets_and_bad_budgets():
    assert len(time_callable(lambda: None, "cpu", Budget.fixed(7))) == 7
    with pytest.raises(ValueError, match="min_rounds"):
        Budget(min_rounds=5, max_rounds=2)
    reduced = Budget(measure_s=2.0, min_rounds=5, max_rounds=100).reduced()
    assert reduced.measure_s == 0.5 and reduced.min_rounds == 3


def test_the_benchmark_fixture_gets_the_planned_rounds_and_no_second_warm_up():
    class Fake:
        disabled = False

        def pedantic(self, fn, rounds, warmup_rounds, iterations, setup=None):
            self.rounds, self.warmup = rounds, warmup_rounds
            for _ in range(rounds):
                fn()

    fake, record = Fake(), {}
    run_benchmark(fake, lambda: time.sleep(0.12), "cpu", Budget(measure_s=0.1, min_rounds=4, warmup_s=0.0), record)
    assert (fake.rounds, fake.warmup) == (4, 0) and record["rounds_planned"] == 4


def test_native_low_precision_is_read_from_the_cpu_flags():
    amd_avx2 = "processor : 0\nflags : fpu sse2 avx avx2 fma\n"
    sapphire = "flags : avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile\n"
    graviton3 = "Features : fp asimd asimdhp bf16 sve\n"
    assert cpu_native_low_precision(amd_avx2, "AVX2", "") == ()
    assert cpu_native_low_precision(sapphire, "AVX512", "") == ("bf16", "fp16")
    assert cpu_native_low_precision(graviton3, "SVE256", "") == ("bf16", "fp16")
    # the same Sapphire Rapids with its dispatch capped (ATEN_CPU_CAPABILITY=avx2, or oneDNN below
    # AVX512_CORE_BF16) converts through fp32: emulated, as the AMD part is
    assert cpu_native_low_precision(sapphire, "AVX2", "") == ()
    assert cpu_native_low_precision(sapphire, "AVX512", "AVX2") == ()
    assert cpu_native_low_precision(sapphire, "AVX512", "AVX512_CORE_AMX") == ("bf16", "fp16")


def test_an_emulated_bf16_row_says_so_and_gets_the_reduced_budget(monkeypatch):
    """On a CPU without AVX512-BF16 (simulated here whatever this machine has) a bf16 row
    notes the emulation, the headline does not present it as the device's bf16 throughput,
    and the case is timed with the reduced budget."""
    import pandas as pd

    import bench.core.hardware as hardware
    from bench.core.timing import budget_for
    from bench.report.headline import build

    caps = Capabilities(False, 0, (), (), True, ("gloo",), 2, cpu_native=())
    monkeypatch.setattr(hardware, "probe", lambda: caps)
    row: dict = {}
    budget = budget_for(Budget(measure_s=2.0), "cpu", "bf16", row)
    assert "emulated" in row["precision_note"] and budget.measure_s == 0.5
    assert budget_for(Budget(measure_s=2.0), "cpu", "fp32", {}).measure_s == 2.0
    assert Capabilities(False, 0, (), (), True, (), 2, cpu_native=("bf16",)).cpu_emulation_note("cpu", "bf16") is None
    # a CPU with the flags under a dispatch cap: emulated too, and the note blames the cap, not the CPU
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    capped = Capabilities(False, 0, (), (), True, (), 2, cpu_native=(), cpu_capped=("bf16",))
    assert "has native bf16 arithmetic, but this process's kernels are capped below it (ATEN_CPU_CAPABILITY=avx2)" \
        in capped.cpu_emulation_note("cpu", "bf16")
    devices = pd.DataFrame([{"model": "mlp", "device": "cpu", "dtype": "bf16", "phase": "train", "batch_size": 256,
                             "status": "ok", "tflops": 0.5, "pct_of_peak": 40.0, **row}])
    head = build({"devices": devices}, {"complete": True}, [])
    assert any("EMULATED" in what for what, _, _ in head.numbers)


def test_a_session_that_switched_to_the_new_fp32_precision_api_still_writes_its_report(tmp_path):
    """transformers' Trainer sets torch.backends.fp32_precision; reading the legacy TF32 switch
    then raises. The fingerprint reads the new API, and a fingerprint that fails anyway
    becomes a note, never a lost report."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["bench.pytest_plugin"]\n')
    (tmp_path / "test_tf32.py").write_text('''
import time
import pytest
import torch
from bench.core.profiles import case

@pytest.mark.parametrize("c", [case("devices", model="m", device="cpu", dtype="fp32", phase="inference",
                                    batch_size=1)])
def test_sets_new_api(c, bench_row, benchmark):
    torch.backends.fp32_precision = "tf32"
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=3, iterations=1)
''')
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-m", "pytest", "test_tf32.py", "--benchmark-only", "-q",
                          f"--bench-report-dir={tmp_path / 'r'}", "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    data = json.loads((tmp_path / "r" / "latest" / "results.json").read_text())
    assert data["bench_rows"][0]["status"] == "ok" and (tmp_path / "r" / "latest" / "summary.md").is_file()
    fp = data["machine_info"]["bench"]
    assert "fingerprint_error" not in fp and fp["float32_matmul_precision"].startswith("fp32_precision=")


def test_a_fingerprint_that_raises_becomes_a_note(monkeypatch):
    import bench.core.env as env

    def broken(learned=None):
        raise RuntimeError("driver query failed")

    monkeypatch.setattr(env, "fingerprint", broken)
    fp = env.safe_fingerprint({"model_hashes": {}})
    assert "driver query failed" in fp["fingerprint_error"] and fp["model_hashes"] == {}


def test_the_load_probe_never_reports_an_impossible_share():
    """/proc/stat counts in 10 ms ticks: a few-ms case once read as 770 % foreign load. Work
    shorter than the probe's minimum is not judged, and a share never leaves [0, 1]."""
    from bench.core.load import LoadProbe

    probe = LoadProbe()
    assert probe.foreign_share() is None  # far shorter than MIN_WALL_S
    probe.t0 -= 5.0  # as if 5 s had passed
    share = probe.foreign_share()
    assert share is None or 0.0 <= share <= 1.0


def test_the_cpu_of_a_grandchild_is_ours_not_foreign_load():
    """Inductor's compile workers run under a pool process: before, their CPU read as another
    job's load (getrusage sees a grandchild only once its parent has ended)."""
    import subprocess
    import sys
    import time

    from bench.core.load import _live_children_cpu_s

    burn = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        time.sleep(1.2)
        assert _live_children_cpu_s() > 0.5  # the grandchild's busy loop, counted while it runs
    finally:
        proc.wait()
