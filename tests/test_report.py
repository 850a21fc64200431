"""Report building from recorded results, atomic writes, the CLI and compare."""
import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report import build_report, load_results
from bench.report.compare import compare
from bench.report.io import ResultsError, atomic_write_text
from bench.timing import percentile, summarize_ms

DATA = Path(__file__).parent / "data"


def _bench(name, samples, extra=None):
    s = sorted(samples)
    mean = sum(s) / len(s)
    var = sum((x - mean) ** 2 for x in s) / (len(s) - 1)
    return {"name": name, "fullname": f"suites/test_x.py::{name}", "extra_info": extra or {},
            "stats": {"data": samples, "median": percentile(s, 50), "mean": mean, "stddev": var ** 0.5,
                      "rounds": len(s), "min": s[0], "max": s[-1]}}


def _run(benches, torch_version="2.13.0"):
    return {"machine_info": {"bench": {"torch": torch_version, "torch_threads": 2}}, "benchmarks": benches,
            "version": "5.3.1"}


def test_report_from_recorded_pytest_benchmark_json(tmp_path):
    """A plain pytest-benchmark JSON (recorded with --benchmark-json) rebuilds the tables
    from each benchmark's extra_info."""
    data = load_results(DATA / "pytest_benchmark_recorded.json")
    tables = build_report(data, tmp_path)
    assert set(tables) == {"devices"}
    df = tables["devices"]
    assert list(df.columns[:7]) == ["model", "device", "dtype", "phase", "batch_size", "status", "reason"]
    assert (df["status"] == "ok").all() and df["median_ms"].gt(0).all()
    for name in ("summary.md", "index.html", "devices.csv", "results.json"):
        assert (tmp_path / name).stat().st_size > 0


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "summary.md"
    atomic_write_text(target, "old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]  # no temp file left behind


def test_percentiles_against_hand_count():
    samples = [0.004, 0.001, 0.003, 0.002, 0.005]
    s = summarize_ms(samples)
    assert s["median_ms"] == pytest.approx(3.0)
    assert s["p90_ms"] == pytest.approx(4.6)  # 4 + 0.6 * (5 - 4)
    assert s["rounds"] == 5


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ('{"benchmarks": [', "not valid JSON"),
    ('[1, 2]', "not a pytest-benchmark or bench results file"),
    ('{"foo": 1}', "not a pytest-benchmark or bench results file"),
])
def test_cli_unreadable_input_is_exit_2_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    for argv in (["report", str(path)], ["compare", str(path), str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err and str(path) in err


def test_cli_report_rebuilds_folder(tmp_path):
    src = tmp_path / "run" / "results.json"
    src.parent.mkdir()
    src.write_text((DATA / "pytest_benchmark_recorded.json").read_text())
    assert main(["report", str(src)]) == 0
    assert (src.parent / "summary.md").is_file() and (src.parent / "devices.csv").is_file()


def test_compare_flags_planted_slowdown_and_not_noise(tmp_path):
    rng = random.Random(0)
    base = [_bench(f"b{i}", [0.010 * (1 + rng.gauss(0, 0.03)) for _ in range(30)]) for i in range(5)]
    noise = [_bench(b["name"], [0.010 * (1 + rng.gauss(0, 0.03)) for _ in range(30)]) for b in base]
    slow = copy.deepcopy(noise)
    slow[2] = _bench("b2", [0.0125 * (1 + rng.gauss(0, 0.03)) for _ in range(30)])
    files = {}
    for name, benches in (("base", base), ("noise", noise), ("slow", slow)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(_run(benches)))
    assert main(["compare", str(files["base"]), str(files["noise"])]) == 0
    verdict = compare(load_results(files["base"]), load_results(files["slow"]))
    assert list(verdict.regressions["benchmark"]) == ["suites/test_x.py::b2"]
    assert verdict.regressions["change_pct"].iloc[0] == pytest.approx(25, abs=3)
    assert main(["compare", str(files["base"]), str(files["slow"]), "--format", "csv"]) == 1


def test_compare_without_raw_samples_uses_confidence_intervals(tmp_path):
    base = _bench("b", [0.010, 0.0101, 0.0099] * 10)
    new = _bench("b", [0.0125, 0.0126, 0.0124] * 10)
    for b in (base, new):
        del b["stats"]["data"]
    verdict = compare(_run([base]), _run([new]))
    assert verdict.table["test"].iloc[0] == "ci-overlap"
    assert len(verdict.regressions) == 1


def test_compare_warns_on_environment_and_nothing_in_common(tmp_path):
    a = _run([_bench("a", [0.01] * 5)], torch_version="2.12.0")
    b = _run([_bench("a", [0.01] * 5)], torch_version="2.13.0")
    assert any("torch" in w for w in compare(a, b).warnings)
    a["bench_run"], b["bench_run"] = {"profile": "smoke"}, {"profile": "standard"}
    assert any("different profiles" in w for w in compare(a, b).warnings)
    with pytest.raises(ResultsError, match="no benchmark in common"):
        compare(a, _run([_bench("z", [0.01] * 5)]))


def test_compare_baseline_latest_uses_history(tmp_path):
    history = tmp_path / "reports" / "history"
    history.mkdir(parents=True)
    (history / "20260101-000000-smoke-1.json").write_text(json.dumps(_run([_bench("a", [0.010] * 10)])))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(_run([_bench("a", [0.010] * 10)])))
    assert main(["compare", "--baseline", "latest", "--reports-dir", str(tmp_path / "reports"), str(new)]) == 0


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "compare" in out.stdout and "peak" in out.stdout
