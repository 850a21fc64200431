"""Device throughput faults: an out-of-memory case is an ``oom`` row and the run goes on;
an unavailable model is ``skipped`` with its reason."""
import json

SUITE = """
import pytest, torch
from bench.devices import scenario as throughput
from bench.core.profiles import case
from bench.registry import ModelSpec
from bench.core.timing import Budget

def build_oom():
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

def batch(bs, device):
    return (torch.randn(bs, 4),), torch.zeros(bs, dtype=torch.long)

OOM = ModelSpec(name="huge", build=build_oom, make_batch=batch)
GONE = ModelSpec(name="gone", build=lambda: torch.nn.Linear(4, 2), make_batch=batch,
                 unavailable=lambda: "package foo is not installed here")
FINE = ModelSpec(name="fine", build=lambda: torch.nn.Linear(4, 2), make_batch=batch)
SPECS = {"huge": OOM, "gone": GONE, "fine": FINE}

@pytest.mark.parametrize("c", [case("devices", model=m, device="cpu", dtype="fp32", phase="inference", batch_size=8)
                               for m in SPECS])
def test_case(c, bench_row, benchmark, bench_session):
    throughput.run_case(c, benchmark, bench_row, bench_session, budget=Budget.fixed(3, warmup_rounds=1),
                        spec=SPECS[c["model"]])
"""


def test_oom_and_unavailable_rows(bench_pytester):
    bench_pytester.makepyfile(test_suite=SUITE)
    result = bench_pytester.runpytest_subprocess("--bench-device=cpu")
    assert result.ret == 0, result.stdout.str()[-2000:]
    data = json.loads((bench_pytester.path / "reports" / "latest" / "results.json").read_text())
    rows = {r["model"]: r for r in data["bench_rows"]}
    assert rows["huge"]["status"] == "oom" and "batch size 8" in rows["huge"]["reason"]
    assert rows["gone"]["status"] == "skipped" and "foo" in rows["gone"]["reason"]
    assert rows["fine"]["status"] == "ok" and rows["fine"]["samples_per_s"] > 0
    assert rows["fine"]["pct_of_peak"] > 0
