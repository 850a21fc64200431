"""What a newcomer meets in the first hour: a run timed under a busy neighbour is not a red gate
and its report says so, `peak` shows progress and the reports' own roofs, a `--hf-model`
folder without config.json is a usage error, report files follow the umask."""
import copy
import json
import os
import stat
from pathlib import Path

import pytest

from bench.__main__ import main

REAL = Path(__file__).parent / "data" / "results_smoke.json"
CASE = "suites/test_graph_modes.py::test_graph_mode[custom_ops_mlp-eager-cpu-fp32-train]"


def _loaded_pair(tmp_path, share=0.65, factor=6.0):
    """The same run twice; the second's CASE timed ``factor`` x slower while other processes
    took ``share`` of the CPU (what a busy neighbour does to an A/A)."""
    base = json.loads(REAL.read_text())
    new = copy.deepcopy(base)
    new["bench_run"]["run_id"] = "loaded"
    for b in new["benchmarks"]:
        if b["fullname"] == CASE:
            b["stats"]["data"] = [v * factor for v in b["stats"]["data"]]
    row = next(r for r in new["bench_rows"] if r["test"] == CASE)
    row["foreign_cpu_share"] = share
    paths = []
    for name, data in (("base", base), ("new", new)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    return [str(p) for p in paths]


def test_a_case_timed_under_load_is_unsure_at_one_run_a_side(tmp_path, capsys):
    base, new = _loaded_pair(tmp_path)
    assert main(["compare", base, new, "--format", "json"]) == 0  # not a red gate
    out = json.loads(capsys.readouterr().out)
    timed = [m for m in out["metrics"] if m["case"] == CASE and m["metric"] == "median_ms"]
    assert timed and timed[0]["verdict"] == "unsure" and "timed under load" in timed[0]["note"]
    assert "loaded (65%)" in timed[0]["timed_under_load"]
    assert main(["compare", base, new]) == 0
    head = capsys.readouterr().out.splitlines()
    assert "timed under foreign load" in " ".join(line.strip() for line in head[:4]), head[:4]  # wrapped at 120
    # the same slowdown on a quiet machine is a regression
    quiet_base, quiet_new = _loaded_pair(tmp_path, share=0.0)
    assert main(["compare", quiet_base, quiet_new, "--format", "json"]) == 1


def test_a_report_timed_under_load_says_so_in_its_headline():
    import pandas as pd

    from bench.report.headline import build

    rows = [{"status": "ok", "reason": None, "foreign_cpu_share": s} for s in (0.65, 0.7, 0.02)]
    head = build({"autograd_ops": pd.DataFrame(rows)}, {"complete": True}, [])
    assert "2 of 3 timed cases ran while other processes took > 10% of the CPU" in head.verdict
    assert "SUSPECT" in head.verdict
    quiet = build({"autograd_ops": pd.DataFrame(rows[2:])}, {"complete": True}, [])
    assert "other processes" not in quiet.verdict


def test_peak_prints_each_dtype_marks_emulated_and_uses_the_reports_roof(monkeypatch, capsys):
    import bench.core.flops as flops
    import bench.core.hardware as hardware

    caps = hardware.probe()
    monkeypatch.setattr(hardware, "probe", lambda: hardware.Capabilities(**{**caps.__dict__, "cpu_native": ()}))
    seen = []

    def roof(device, dtype, n=None, rounds=8):  # the reports' roof, with the figure it returned
        seen.append((device, dtype, n))
        return {"device": device, "dtype": dtype, "n": n or 64, "flops": 2 * 64**3, "median_ms": 0.5,
                "tflops": 1.234, "kernel": "linear", "block_spread": 1.0, "kernel_tflops": {}}

    monkeypatch.setattr(flops, "measured_peak", roof)
    assert main(["peak", "--device", "cpu", "--dtype", "fp32,bf16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fp32 = next(line for line in lines if line.split()[:2] == ["cpu", "fp32"] and "linear" in line)
    assert " 1.234 " in fp32  # the figure is the reports' roof itself
    assert any(line.split()[:4] == ["cpu", "bf16", "skipped,", "emulated:"] and "--emulated" in line
               for line in lines), lines
    assert seen == [("cpu", "fp32", None)]
    assert main(["peak", "--device", "cpu", "--dtype", "bf16", "--emulated"]) == 0
    out = capsys.readouterr().out
    assert "bf16  timing (EMULATED)" in out and "EMULATED: not this CPU's low-precision throughput" in out
    assert seen[-1] == ("cpu", "bf16", None)


def test_hf_model_folder_without_config_is_a_usage_error(bench_pytester, tmp_path):
    folder = tmp_path / "weights-only"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    bench_pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = bench_pytester.runpytest_subprocess(f"--hf-model={folder}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "has no config.json" in result.stderr.str() and str(folder) in result.stderr.str()


def test_report_files_follow_the_umask(tmp_path):
    from bench.report import build_report

    data = json.loads(REAL.read_text())
    old = os.umask(0o022)
    try:
        build_report(data, tmp_path / "r")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert files and {p.name for p in files} >= {"index.html", "summary.md", "results.json"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, (p.name, oct(p.stat().st_mode))


def test_a_skip_reason_never_shows_an_internal_class_path():
    from bench.plugin_rows import message

    class Report:
        skipped, longrepr = True, ("f.py", 1, "bench.core.rows.CaseEnded: unsupported: ValueError: Unrecognized")

    assert message(Report()) == "unsupported: ValueError: Unrecognized"
    Report.longrepr = ("f.py", 1, "Skipped: needs CUDA")
    assert message(Report()) == "needs CUDA"

    class Crash:
        message = "torch._inductor.exc.InductorError: CppCompileError: C++ compile error\nCommand: g++"

    class Failed:
        skipped, longrepr = False, type("L", (), {"reprcrash": Crash})()

    assert message(Failed()) == "InductorError: CppCompileError: C++ compile error"


def test_a_user_model_none_of_whose_rows_ran_fails_the_run():
    import pandas as pd

    from bench.report.headline import build
    from bench.run_state import user_model_unmeasured

    rows = [{"model": "./gemma", "status": "unsupported", "reason": "Gemma2ForCausalLM does not support sdpa"},
            {"model": "./gemma", "status": "skipped", "reason": "profile"},
            {"model": "llama", "status": "ok", "reason": None}]
    why = user_model_unmeasured(rows, "./gemma")
    assert why and "none of its 2 row(s) ran" in why and "does not support sdpa" in why
    assert user_model_unmeasured(rows[:1] + [{"model": "./gemma", "status": "ok"}], "./gemma") is None
    assert user_model_unmeasured(rows, None) is None
    head = build({"generation": pd.DataFrame(rows)}, {"complete": True, "failures": [why]}, [])
    assert not head.good and "RUN FAILED: --hf-model ./gemma" in head.verdict


def test_a_case_that_kills_its_process_is_a_row_not_the_end_of_the_run(tmp_path, monkeypatch):
    from bench.core.isolate import try_in_child

    (tmp_path / "planted_crash.py").write_text(
        "import os, sys\n"
        "def abort(payload):\n    sys.stderr.write('terminate called recursively\\n'); sys.stderr.flush(); os.abort()\n"
        "def fine(payload):\n    return {'ok': payload['n'] + 1}\n"
        "def raises(payload):\n    raise ValueError('a planted failure, whole message kept\\nsecond line')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    crashed = try_in_child("planted_crash:abort", {})
    assert "SIGABRT" in crashed["crashed"] and "terminate called recursively" in crashed["crashed"]
    assert try_in_child("planted_crash:fine", {"n": 1}) == {"ok": 2}
    assert try_in_child("planted_crash:raises", {})["error"].endswith("kept\nsecond line")
