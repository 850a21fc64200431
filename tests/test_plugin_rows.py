"""Rows for every outcome: ok, skipped (capability), error, mismatch, oom; and the report
survives failures and interruptions."""
import json

import pytest

SUITE = """
import pytest
from bench.core.profiles import case

CASES = [case("devices", model="m", device="cpu", dtype="fp32", phase="inference", batch_size=1),
         case("devices", model="m", device="cuda:0", dtype="fp32", phase="inference", batch_size=1),
         case("devices", model="m", device="cpu", dtype="bf16", phase="inference", batch_size=1),
         case("devices", model="m", device="cpu", dtype="fp32", phase="train", batch_size=1),
         case("devices", model="m", device="cpu", dtype="bf16", phase="train", batch_size=1)]

@pytest.mark.parametrize("c", CASES)
def test_case(c, bench_row, benchmark):
    if c["phase"] == "train" and c["dtype"] == "fp32":
        raise RuntimeError("boom in the op")
    if c["phase"] == "train":
        bench_row.end("oom", "out of memory at batch size 1")
    if c["dtype"] == "bf16":
        bench_row.check(False, "max abs err 0.5 > 0.01")
    benchmark.pedantic(lambda: sum(range(100)), rounds=5, iterations=1)
    bench_row["samples_per_s"] = 1.0
"""


def _rows(pytester):
    data = json.loads((pytester.path / "reports" / "latest" / "results.json").read_text())
    return {r["test"].split("[")[1].rstrip("]"): r for r in data["bench_rows"]}, data


def test_every_outcome_is_a_row(bench_pytester):
    bench_pytester.makepyfile(test_suite=SUITE)
    result = bench_pytester.runpytest_subprocess("--bench-device=cpu,cuda")
    rows, data = _rows(bench_pytester)
    assert len(rows) == 5
    ok = rows["m-cpu-fp32-inference-bs1"]
    assert ok["status"] == "ok" and ok["reason"] is None
    assert ok["median_ms"] > 0 and ok["rounds"] == 5
    cuda = rows["m-cuda:0-fp32-inference-bs1"]
    import torch
    if torch.cuda.is_available():  # the same case as the CPU row: it runs and is timed
        assert cuda["status"] == "ok" and cuda["rounds"] == 5
    else:
        assert cuda["status"] == "skipped" and "CUDA" in cuda["reason"]
    assert rows["m-cpu-bf16-inference-bs1"]["status"] == "mismatch"
    assert "0.5" in rows["m-cpu-bf16-inference-bs1"]["reason"]
    err = rows["m-cpu-fp32-train-bs1"]
    assert err["status"] == "error" and "boom in the op" in err["reason"]
    oom = rows["m-cpu-bf16-train-bs1"]
    assert oom["status"] == "oom" and "out of memory" in oom["reason"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the failures still fail the run
    latest = bench_pytester.path / "reports" / "latest"
    for name in ("summary.md", "index.html", "devices.csv", "results.json"):
        assert (latest / name).is_file(), name
    summary = (latest / "summary.md").read_text()
    assert summary.index("## Failures") < summary.index("## devices")
    assert "boom in the op" in summary
    # pytest-benchmark's raw samples are kept beside the rows
    assert data["benchmarks"] and len(data["benchmarks"][0]["stats"]["data"]) == 5
    assert data["machine_info"]["bench"]["torch"]


def test_deselected_devices_have_no_rows(bench_pytester):
    bench_pytester.makepyfile(test_suite=SUITE)
    bench_pytester.runpytest_subprocess("--bench-device=cpu")
    rows, _ = _rows(bench_pytester)
    assert all("cuda" not in k for k in rows)


def test_interrupted_run_keeps_finished_rows(bench_pytester):
    bench_pytester.makepyfile(test_suite="""
        import pytest
        from bench.core.profiles import case

        @pytest.mark.parametrize("c", [case("devices", model="a", device="cpu"),
                                       case("devices", model="b", device="cpu")])
        def test_case(c, bench_row):
            if c["model"] == "b":
                raise KeyboardInterrupt
            bench_row["samples_per_s"] = 2.0
    """)
    result = bench_pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    rows, data = _rows(bench_pytester)
    assert rows["a-cpu"]["status"] == "ok"
    assert data["bench_run"]["complete"] is False
    assert "Incomplete run" in (bench_pytester.path / "reports" / "latest" / "summary.md").read_text()


def test_no_rows_no_report(bench_pytester):
    bench_pytester.makepyfile("def test_x():\n    pass\n")
    bench_pytester.runpytest_subprocess()
    assert not (bench_pytester.path / "reports").exists()


def test_profile_marker_deselects(bench_pytester):
    bench_pytester.makepyfile("""
        import pytest
        @pytest.mark.bench_profile("full")
        def test_full_only():
            pass
        def test_always():
            pass
    """)
    result = bench_pytester.runpytest_subprocess("--bench-profile=smoke")
    result.assert_outcomes(passed=1, deselected=1)


def test_teardown_failure_turns_the_row_into_an_error_once(bench_pytester):
    bench_pytester.makepyfile(test_suite="""
        import pytest
        from bench.core.profiles import case

        @pytest.fixture
        def broken_cleanup():
            yield
            raise RuntimeError("cleanup failed")

        @pytest.mark.parametrize("c", [case("devices", model="a", device="cpu")])
        def test_case(c, bench_row, broken_cleanup):
            bench_row["samples_per_s"] = 1.0
    """)
    bench_pytester.runpytest_subprocess()
    data = json.loads((bench_pytester.path / "reports" / "latest" / "results.json").read_text())
    assert len(data["bench_rows"]) == 1
    row = data["bench_rows"][0]
    assert row["status"] == "error" and "cleanup failed" in row["reason"]


def test_bench_require_cuda_fails_a_run_that_lost_its_gpu(bench_pytester):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the case would run, nothing to require")
    bench_pytester.makepyfile(test_suite=SUITE)
    result = bench_pytester.runpytest_subprocess("--bench-device=cpu,cuda", "--bench-require=cuda",
                                                 "-k", "cpu-fp32-inference or cuda")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--bench-require cuda*1 case(s) were skipped*", "*m-cuda:0-fp32-inference-bs1*"])
    summary = (bench_pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert "--bench-require cuda" in summary
    ok = bench_pytester.runpytest_subprocess("--bench-device=cpu,cuda", "-k", "cpu-fp32-inference or cuda")
    assert ok.ret == pytest.ExitCode.OK


def test_each_row_records_the_warnings_its_case_raised(bench_pytester):
    bench_pytester.makepyfile(test_suite="""
        import warnings
        import pytest
        from bench.core.profiles import case

        @pytest.mark.parametrize("c", [case("devices", model="a", device="cpu"),
                                       case("devices", model="b", device="cpu")])
        def test_case(c, bench_row):
            if c["model"] == "b":
                warnings.warn("There is a performance drop because we have not yet implemented the batching rule")
            bench_row["samples_per_s"] = 1.0
    """)
    bench_pytester.runpytest_subprocess()
    rows, _ = _rows(bench_pytester)
    assert rows["a-cpu"].get("warnings") is None
    assert rows["b-cpu"]["warnings"].startswith("UserWarning: There is a performance drop")


def test_bench_require_cuda_counts_a_lost_gpu_not_a_present_gpus_limits():
    """A float8 row on a GPU below compute capability 8.9 lacks hardware too, but the GPU is
    there: before, --bench-require cuda failed an A100's run for it."""
    from bench.core.hardware import Capabilities
    from bench.run_state import required_but_skipped

    rows = [{"test": "t[float8-cuda:0]", "device": "cuda:0", "status": "skipped", "needs_hardware": True},
            {"test": "t[eager-cuda:0]", "device": "cuda:0", "status": "ok"}]
    a100 = Capabilities(True, 1, ("NVIDIA A100",), (True,), True, ("gloo", "nccl"), 16)
    none = Capabilities(False, 0, (), (), True, ("gloo",), 16)
    assert required_but_skipped(rows, ["cuda"], a100) == []
    assert required_but_skipped(rows, ["cuda"], none) == ["t[float8-cuda:0]"]
