"""Option validation: each bad value is a usage error (exit 4) naming the valid choices."""
import pytest


@pytest.mark.parametrize("args, expected", [
    (["--bench-profile=nope"], ["nope", "smoke", "standard", "full"]),
    (["--bench-device=tpu"], ["tpu", "cpu", "cuda", "cuda:N"]),
    (["--bench-device=cuda:x"], ["cuda:x", "cpu"]),
    (["--bench-plugin=no_such_module_xyz"], ["no_such_module_xyz", "ModuleNotFoundError", "importable module"]),
    (["--bench-plugin=./missing_plugin.py"], ["missing_plugin.py", "no such file"]),
    (["--hf-model=./no/such/model"], ["./no/such/model", "no such file or folder"]),
    (["--hf-dataset=/no/such/data.csv"], ["/no/such/data.csv", "no such file or folder"]),
    # before: "" meant every device; NaN no ceiling
    (["--bench-device="], ["--bench-device is empty", "cuda:N"]),
    (["--bench-time-budget=nan"], ["--bench-time-budget nan", "0 for no ceiling"]),
])
def test_bad_option_is_usage_error(bench_pytester, args, expected):
    bench_pytester.makepyfile("def test_x():\n    pass\n")
    result = bench_pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    for text in expected:
        assert text in err, err


class _Options:
    """A pytest config as check_paths reads it: its options only."""

    def __init__(self, **given):
        self.given = given

    def getoption(self, name):
        return self.given.get(name)


@pytest.mark.parametrize("given, words", [
    # before: a file as the report folder ran the cases, then lost the report to an INTERNALERROR
    ({"bench_report_dir": "/dev/null"}, "--bench-report-dir '/dev/null': cannot write reports there"),
    # a missing references folder turned the curve check off unseen
    ({"bench_references": "./no/refs"}, "--bench-references './no/refs': no such folder"),
    # a local dataset without the columns was a traceback after the first cases
    ({"hf_dataset": "reviews.csv"}, "has no label column(s); it has text, lab"),
])
def test_paths_that_cannot_serve_are_refused_before_any_case(tmp_path, monkeypatch, given, words):
    from bench.plugin_options import check_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.csv").write_text("text,lab\ngood,1\nbad,0\n")
    with pytest.raises(pytest.UsageError) as refused:
        check_paths(_Options(**given))
    assert words in str(refused.value)


def test_hub_ids_are_not_checked_as_paths(bench_pytester):
    bench_pytester.makepyfile("def test_x():\n    pass\n")
    result = bench_pytester.runpytest_subprocess("--hf-model=bert-base-uncased", "--hf-dataset=imdb")
    assert result.ret == 0


def test_plugin_module_registers_models(bench_pytester):
    bench_pytester.makepyfile(my_plugin="""
        import torch
        from bench.registry import ModelSpec, register_model
        register_model(ModelSpec(name="user_linear", build=lambda: torch.nn.Linear(4, 2),
                                 make_batch=lambda b, d: ((torch.randn(b, 4, device=d),),
                                                          torch.zeros(b, dtype=torch.long, device=d))))
    """)
    bench_pytester.makepyfile(test_it="""
        from bench.registry import models
        def test_registered():
            assert "user_linear" in models()
    """)
    result = bench_pytester.runpytest_subprocess("--bench-plugin=my_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_example_user_op_plugin_runs_through_the_suite(tmp_path):
    """The README's "Check your own op" command, as written, on the example plugin."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_autograd_ops.py", "--bench-plugin", "examples.my_op_plugin",
         "-k", "softclip and cpu and not compiles", "--bench-profile=smoke", "--bench-device=cpu",
         f"--bench-report-dir={tmp_path}", "-p", "no:cacheprovider", "-q"],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    csv = (tmp_path / "latest" / "autograd_ops.csv").read_text()
    assert "softclip,cpu,fp32,ok" in csv
