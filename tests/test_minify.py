"""A compile row that does not match eager gets a minimal repro from torch's own minifier,
written next to the report and named in the row; bounded by the run's minifier budget."""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.profiles import PROFILES, Settings
from bench.core.rows import Row
from bench.core.session import Session
from bench.graphs import scenario as gb

PLUGIN = Path(__file__).parent / "data" / "relu_net_plugin.py"
PLANTED = "relu_accuracy_error_TESTING_ONLY"  # Dynamo's test backend: relu becomes x + 1


@pytest.fixture(scope="module")
def relu_net():
    from bench.registry import load_plugin

    load_plugin(str(PLUGIN))
    return "relu_net"


def _session(tmp_path, backend=PLANTED) -> Session:
    profile = dataclasses.replace(PROFILES["smoke"], compile_models=("relu_net",))
    return Session(Settings(profile, ("cpu",), compile_backend=backend, plugins=(str(PLUGIN),)), out_dir=tmp_path)


def _row(phase="inference") -> Row:
    return Row("graph_modes", "t", model="relu_net", mode="compile", device="cpu", dtype="fp32", phase=phase)


def test_a_compile_mismatch_gets_a_minimal_repro(relu_net, tmp_path):
    session = _session(tmp_path)
    row = _row()
    with pytest.raises(AssertionError):
        gb.run_case(dict(row), None, row, session)
    assert row["status"] == "mismatch" and row["compile_backend"] == PLANTED
    assert not Path(row["minimal_repro"]).is_absolute()  # relative to the report folder
    repro = tmp_path / row["minimal_repro"]
    assert repro.name == "repro.py" and repro.is_file(), row["minimal_repro_note"]
    forward = repro.read_text().split("def forward", 1)[1].split("mod = Repro()", 1)[0]
    # shrunk to the one op the planted backend breaks: no linear layers, no tanh
    assert "torch.relu(" in forward and "torch.tanh(" not in forward and "_nn.linear(" not in forward
    assert "graph nodes" in row["minimal_repro_note"] and row["minimal_repro"] in row["reason"]
    # the repro folder still reproduces the failure after it is moved (reports/latest, a CI artifact)
    moved = shutil.copytree(repro.parent, tmp_path / "elsewhere")
    shutil.rmtree(repro.parent)
    ran = subprocess.run([sys.executable, "repro.py"], cwd=moved, capture_output=True, text=True, timeout=300)
    assert ran.returncode != 0 and "AccuracyError" in ran.stderr, ran.stderr[-2000:]
    spent = session.minifier_budget_s
    other = _row("train")  # the other phase of the same model reuses the repro: no second minification
    with pytest.raises(AssertionError):
        gb.run_case(dict(other), None, other, session)
    assert other["minimal_repro"] == row["minimal_repro"] and session.minifier_budget_s == spent


def test_a_spent_budget_skips_the_minifier_with_its_reason(relu_net, tmp_path):
    session = _session(tmp_path)
    session.minifier_budget_s = 0.0
    row = _row()
    with pytest.raises(AssertionError):
        gb.run_case(dict(row), None, row, session)
    assert row["minimal_repro"] is None and "budget" in row["minimal_repro_note"]
    assert not (tmp_path / "repros").exists()


def test_a_matching_compile_row_runs_no_minifier(relu_net, tmp_path):
    session = _session(tmp_path, backend="aot_eager")
    row = _row()
    gb.run_case(dict(row), None, row, session)  # parity ok: the case runs to its end, nothing ends it early
    assert row["status"] is None and row["compile_backend"] == "aot_eager" and row["max_abs_err"] is not None
    assert "minimal_repro" not in row
    assert not (tmp_path / "repros").exists()


def test_an_unknown_backend_names_the_valid_ones():
    from bench.core.profiles import settings

    with pytest.raises(ValueError, match="unknown torch.compile backend 'inductr'.*aot_eager"):
        settings("smoke", ["cpu"], compile_backend="inductr")


def test_the_plugin_writes_the_repro_into_the_report(bench_pytester):
    """--bench-compile-backend reaches the graph-modes rows; the repro lands in the run's
    report folder (and reports/latest) under the path the row names."""
    bench_pytester.makepyfile(test_suite="""
        import pytest
        from bench.core.profiles import case
        from bench.graphs import scenario as gb

        @pytest.mark.parametrize("c", [case("graph_modes", model="relu_net", mode="compile", device="cpu",
                                            dtype="fp32", phase="inference")])
        def test_case(c, bench_row, benchmark, bench_session):
            gb.run_case(c, benchmark, bench_row, bench_session)
    """)
    result = bench_pytester.runpytest_subprocess("--bench-device=cpu", f"--bench-plugin={PLUGIN}",
                                                 f"--bench-compile-backend={PLANTED}", "--bench-report-dir=rel")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-2000:]
    latest = bench_pytester.path / "rel" / "latest"  # a relative report folder works too
    row = json.loads((latest / "results.json").read_text())["bench_rows"][0]
    assert row["status"] == "mismatch" and row["compile_backend"] == PLANTED
    assert (latest / row["minimal_repro"]).is_file()
    assert "minimal_repro" in (latest / "graph_modes.csv").read_text().splitlines()[0]
    data = json.loads((latest / "results.json").read_text())
    assert data["machine_info"]["bench"]["compile_backend"] == PLANTED  # compare lists a backend change


def test_an_unknown_backend_option_is_a_usage_error(bench_pytester):
    bench_pytester.makepyfile(test_suite="def test_nothing():\n    pass\n")
    result = bench_pytester.runpytest_subprocess("--bench-compile-backend=inductr")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown torch.compile backend 'inductr'" in result.stderr.str()


class FakeRun:
    """Stands in for minify._run: each call pops the next outcome (or raises it)."""

    def __init__(self, *outcomes):
        self.outcomes, self.calls = list(outcomes), []

    def __call__(self, cmd, cwd, env, deadline):
        self.calls.append(cmd)
        outcome = self.outcomes.pop(0)
        if callable(outcome):
            outcome = outcome(cwd)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _minimal(tmp_path, monkeypatch, fake):
    from bench.graphs import minify

    monkeypatch.setattr(minify, "_run", fake)
    session = _session(tmp_path)
    return minify.minimal_repro("relu_net", "cpu", session), session


def test_capture_past_the_time_limit_is_named(relu_net, tmp_path, monkeypatch):
    out, session = _minimal(tmp_path, monkeypatch, FakeRun(subprocess.TimeoutExpired("x", 1)))
    assert out["minimal_repro"] is None and "took longer than the 300 s limit" in out["minimal_repro_note"]
    assert 0 < 900 - session.minifier_budget_s < 1.0  # charged the time it took, not the limit


def test_a_crashed_child_is_not_called_a_clean_pass(relu_net, tmp_path, monkeypatch):
    fake = FakeRun((1, "{not json\n", "Traceback ...\nKeyError: 'model relu_net is not registered'"))
    out, _ = _minimal(tmp_path, monkeypatch, fake)
    assert "child failed (exit 1)" in out["minimal_repro_note"] and "KeyError" in out["minimal_repro_note"]
    assert fake.calls[0][fake.calls[0].index("--plugin") + 1] == str(PLUGIN)  # the plugin reaches the child


def test_shrinking_past_the_limit_keeps_what_it_shrank(relu_net, tmp_path, monkeypatch):
    def launcher_found(cwd):
        path = cwd / "dynamo" / "minifier_launcher.py"
        path.parent.mkdir(parents=True)
        path.write_text("# whole graph")
        return 0, json.dumps({"launcher": str(path), "error": "AccuracyError"}) + "\n", ""

    def partly_shrunk(cwd):
        (cwd / "checkpoints").mkdir()
        (cwd / "checkpoints" / "minified_6_nodes.py").write_text("")
        (cwd / "repro.py").write_text("import os\nrun_repro(mod, save_dir='/abs/checkpoints')\n")
        return subprocess.TimeoutExpired("x", 1)

    out, _ = _minimal(tmp_path, monkeypatch, FakeRun(launcher_found, partly_shrunk))
    assert out["minimal_repro"].endswith("repro.py") and "partly shrunk" in out["minimal_repro_note"]
    assert "6 graph nodes" in out["minimal_repro_note"]
    text = (tmp_path / out["minimal_repro"]).read_text()
    assert "/abs/checkpoints" not in text and "os.path.dirname(os.path.abspath(__file__))" in text

    out, _ = _minimal(tmp_path / "b", monkeypatch, FakeRun(launcher_found, subprocess.TimeoutExpired("x", 1)))
    assert out["minimal_repro"].endswith("minifier_launcher.py") and "whole failing graph" in out["minimal_repro_note"]


def test_a_mismatch_dynamo_cannot_reproduce_says_what_was_compared(relu_net, tmp_path, monkeypatch):
    """Dynamo's accuracy check compares compiled graphs with the captured graphs run eagerly,
    not with the model: the note says so, and under the eager backend names capture."""
    def clean(cwd):
        (cwd / "captured").mkdir()
        (cwd / "captured" / "graph_0.py").write_text("class GraphModule: ...")
        return 0, json.dumps({"launcher": None, "error": None}) + "\n", ""

    out, session = _minimal(tmp_path, monkeypatch, FakeRun(clean))
    note = out["minimal_repro_note"]
    assert "not a comparison with the original model" in note and "--bench-compile-backend eager" in note, note
    assert out["minimal_repro"].endswith("captured") and (tmp_path / out["minimal_repro"] / "graph_0.py").is_file()
    session.settings = dataclasses.replace(session.settings, compile_backend="eager")
    from bench.graphs import minify

    monkeypatch.setattr(minify, "_run", FakeRun(clean))
    out = minify.minimal_repro("relu_net", "cpu", session)
    assert "capture (Dynamo's tracing) is the suspect" in out["minimal_repro_note"], out
