"""``--bench-threads N``: the thread count every timed path runs at (this process, and through
``BENCH_THREADS`` every worker and rank it starts), recorded in the run, and a reason for
``compare`` to refuse runs that differ in it."""
import json
from pathlib import Path

import pytest

from bench.core.launch import threads_per_rank
from bench.report.comparable import check_comparable
from bench.report.compare import compare_runs
from bench.report.io import ResultsError
from bench.report.runs import load_run, repro_command

REAL = Path(__file__).parent / "data" / "results_smoke.json"


def test_bad_thread_count_is_a_usage_error_naming_the_cores(bench_pytester):
    bench_pytester.makepyfile("def test_x():\n    pass\n")
    result = bench_pytester.runpytest_subprocess("--bench-threads=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--bench-threads 0: give 1 or more" in result.stderr.str()


def test_the_setting_reaches_this_process_and_the_children(bench_pytester):
    """The case sees torch at one thread; a child it starts (a worker, a rank) inherits the cap."""
    bench_pytester.makepyfile("""
        import os, subprocess, sys
        import torch
        def test_threads():
            assert torch.get_num_threads() == 1
            code = ("import torch; from bench.core.launch import threads_per_rank; "
                    "print(torch.get_num_threads(), threads_per_rank())")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            assert out.stdout.split() == ["1", "1"], out.stdout
    """)
    result = bench_pytester.runpytest_subprocess("--bench-threads=1", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_threads_per_rank_takes_the_cap(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.delenv("BENCH_THREADS", raising=False)
    assert threads_per_rank() == 4
    monkeypatch.setenv("BENCH_THREADS", "1")
    assert threads_per_rank() == 1
    assert threads_per_rank(3) == 1  # a worker's explicit --threads (the DDP baseline's cores) is capped too
    monkeypatch.setenv("BENCH_THREADS", "16")
    assert threads_per_rank() == 4  # a cap above this rank's share of the cores changes nothing


def _run(tmp_path, name: str, threads) -> str:
    data = json.loads(REAL.read_text())
    data["bench_run"].update(run_id=name, threads=threads)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_compare_refuses_runs_at_different_thread_counts(tmp_path):
    a, b = load_run(_run(tmp_path, "a", None)), load_run(_run(tmp_path, "b", 1))
    assert (a.threads, b.threads) == (None, 1)
    with pytest.raises(ResultsError, match=r"different --bench-threads \(1, default\).*--allow-profile-mismatch"):
        compare_runs([a], [b])
    warnings = check_comparable([a], [b], allow_profile_mismatch=True, allow_machine_mismatch=False)
    assert any("different --bench-threads" in w for w in warnings)
    same = load_run(_run(tmp_path, "c", 1))
    assert compare_runs([same], [b]).metrics  # the same setting on both sides: compared as usual
    case = next(iter(b.rows))
    assert "--bench-threads=1" in repro_command(case, b, b.rows[case])
