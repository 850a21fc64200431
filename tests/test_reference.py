"""The torch-independent reference timed between a case's rounds, and the ``*_norm`` twins
``compare`` judges: it never imports torch, it stays a small share of a case's time, rows get
their twins, and a machine-state move that slows the case and the reference alike leaves the
twin unmoved (and is named)."""
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.core import reference
from bench.core.rows import Row, add_reference_twins
from bench.core.timing import Budget, time_callable
from bench.report.compare import compare_runs
from bench.report.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(__file__).parent / "data" / "results_smoke.json"
CASE = "suites/test_graph_modes.py::test_graph_mode[mlp-eager-cpu-fp32-train]"


def test_the_reference_does_not_import_torch():
    out = subprocess.run([sys.executable, "-c", "import sys, bench.core.reference as r; r.work(); "
                          "print('torch' in sys.modules)"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_a_timed_case_gets_its_reference_at_a_small_share_of_its_rounds():
    record: dict = {}
    samples = time_callable(lambda: time.sleep(0.002), "cpu", Budget(measure_s=0.2, min_rounds=5, max_rounds=200,
                                                                         warmup_s=0.02), record=record)
    assert record["reference_rounds"] >= reference.MIN_SAMPLES + 1 and record["reference_ms"] > 0
    interleaved = record["reference_rounds"] - 1  # the first call calibrates
    assert interleaved * record["reference_ms"] / 1e3 <= 2.5 * reference.MAX_SHARE * sum(samples) + 0.05


def test_rows_get_a_twin_per_declared_timing_column():
    row = Row("graph_modes", "t", model="m", mode="eager", device="cpu", dtype="fp32", phase="train")
    row.update(median_ms=3.0, reference_ms=1.5)
    row.finalize("passed", None)
    assert row["median_ms_norm"] == 2.0
    bare = Row("graph_modes", "t2")
    bare.update(median_ms=3.0)
    bare.finalize("passed", None)
    assert "median_ms_norm" not in bare


def _run(tmp_path, name, factor, ref_factor):
    data = json.loads(REAL.read_text())
    data["bench_run"]["run_id"] = name
    row = next(r for r in data["bench_rows"] if r["test"] == CASE)
    row.update(reference_ms=1.0 * ref_factor, median_ms=row["median_ms"] * factor)
    add_reference_twins(row)  # the twin as a run writes it
    for b in data["benchmarks"]:
        if b["fullname"] == CASE:
            b["stats"]["data"] = [v * factor for v in b["stats"]["data"]]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return load_run(path)


def test_a_machine_that_slowed_everything_moves_the_raw_time_and_not_its_twin(tmp_path):
    """B's machine state is 1.3x slower for the case and the reference alike: the raw timing
    reads a regression, the twin does not, and the warning names the reference's move."""
    jitter = (1.0, 1.01, 0.99)
    a = [_run(tmp_path, f"a{i}", j, j) for i, j in enumerate(jitter)]
    b = [_run(tmp_path, f"b{i}", 1.3 * j, 1.3 * j) for i, j in enumerate(jitter)]
    diff = compare_runs(a, b)
    raw = next(m for m in diff.metrics if m["case"] == CASE and m["metric"] == "median_ms")
    twin = next(m for m in diff.metrics if m["case"] == CASE and m["metric"] == "median_ms_norm")
    assert raw["verdict"] == "regression" and twin["verdict"] == "same"
    assert any("reference itself took 1.30x" in w for w in diff.warnings)
