"""Report building from recorded results, atomic writes, the CLI and compare."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.core.timing import summarize_ms
from bench.report import build_report, load_results
from bench.report.io import atomic_write_text

DATA = Path(__file__).parent / "data"


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


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "compare" in out.stdout and "peak" in out.stdout
