"""Committed loss-curve references (``bench.report.references``, ``python -m bench reference
update``): recorded with a reason, checked on every run; a curve that left its reference in the
reference's own environment fails the run naming the step, in another environment it is a
finding in the row and the headline."""
import json

import pytest

from bench.__main__ import main
from bench.report.io import ResultsError
from bench.report.references import check, path_for, update

CASE = "suites/test_trainer.py::test_trainer[trainer-cpu-fp32]"
CURVE = [0.6931, 0.6702, 0.6311, 0.5820, 0.5214]
FP = {"torch": "2.13.0+cpu", "transformers": "5.2.0", "cpu_capability": "AVX512", "torch_threads": 2}


def _results(curve=CURVE, fp=FP):
    return {"bench_run": {"profile": "standard", "run_id": "r1"}, "machine_info": {"bench": dict(fp)},
            "bench_rows": [
                {"suite": "trainer", "test": CASE, "status": "ok", "device": "cpu", "loss_curve": list(curve)},
                {"suite": "trainer", "test": "suites/test_trainer.py::test_trainer[x]", "status": "error"}]}


def test_update_needs_a_reason_and_keeps_the_earlier_ones(tmp_path):
    with pytest.raises(ResultsError, match="--reason is required"):
        update(_results(), " ", tmp_path)
    [path] = update(_results(), "first reference", tmp_path)
    assert path == path_for(tmp_path, "standard", CASE) and path.parent.name == "standard"
    update(_results(), "torch 2.14: checked by hand", tmp_path)
    ref = json.loads(path.read_text())
    assert ref["loss_curve"] == CURVE and ref["reason"] == "torch 2.14: checked by hand"
    assert ref["history"][0]["reason"] == "first reference" and ref["environment"]["torch"] == "2.13.0+cpu"


def test_a_run_is_checked_against_its_reference(tmp_path):
    update(_results(), "first reference", tmp_path)
    rows = _results()["bench_rows"]
    assert check(rows, "standard", FP, tmp_path) == [] and rows[0]["reference"] == "same"
    moved = _results(CURVE[:2] + [v * 1.001 for v in CURVE[2:]])["bench_rows"]
    [failure] = check(moved, "standard", FP, tmp_path)  # same environment: the project changed the training
    assert CASE in failure and "at step 2" in failure and moved[0]["reference"].startswith("changed")
    upgraded = _results(CURVE[:2] + [v * 1.001 for v in CURVE[2:]])["bench_rows"]
    assert check(upgraded, "standard", {**FP, "torch": "2.14.1"}, tmp_path) == []  # an upgrade: a finding
    assert "step 2" in upgraded[0]["reference"] and "torch 2.13.0+cpu, this run 2.14.1" in upgraded[0]["reference"]
    assert check(_results()["bench_rows"], "smoke", FP, tmp_path) == []  # no reference for this profile
    avx2 = _results([v * 1.001 for v in CURVE])["bench_rows"]  # another ISA: other kernels, its own curve
    assert check(avx2, "standard", {**FP, "cpu_capability": "AVX2"}, tmp_path) == []
    assert avx2[0]["reference"] == "not compared: recorded on other hardware (cpu_capability AVX512, this run AVX2)"
    shorter = _results(CURVE[:3])["bench_rows"]  # another number of steps: not the same training
    assert check(shorter, "standard", FP, tmp_path) == [] and shorter[0]["reference"].startswith("not compared")
    shrunk = _results([v * 1.1 for v in CURVE])["bench_rows"]
    shrunk[0]["plan"] = "shrunk"  # the time plan gave it a smaller batch
    assert check(shrunk, "standard", FP, tmp_path) == [] and "time plan ran the case shrunk" in shrunk[0]["reference"]


def test_a_users_model_or_data_is_not_compared_with_the_built_in_references(tmp_path):
    update(_results(), "first reference", tmp_path)
    mine = _results([v * 1.2 for v in CURVE])["bench_rows"]
    assert check(mine, "standard", FP, tmp_path, user_inputs="trains --hf-dataset my.csv") == []
    assert mine[0]["reference"].startswith("not compared") and "--hf-dataset my.csv" in mine[0]["reference"]
    other = _results([v * 1.2 for v in CURVE])["bench_rows"]
    other[0]["model"] = "/my/model"  # the reference recorded model None... give it one
    ref = path_for(tmp_path, "standard", CASE)
    ref.write_text(json.dumps({**json.loads(ref.read_text()), "model": "all-MiniLM-L6-v2"}))
    assert check(other, "standard", FP, tmp_path) == [] and "this row /my/model" in other[0]["reference"]
    lost = _results([None] * len(CURVE))["bench_rows"]  # every step lost: still never "same"
    lost[0]["model"] = "all-MiniLM-L6-v2"
    assert check(lost, "standard", {**FP, "torch": "2.14.1"}, tmp_path) == []
    assert lost[0]["reference"].startswith("changed")


def test_an_unreadable_reference_is_a_failure_that_names_it(tmp_path):
    path = path_for(tmp_path, "standard", CASE)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    rows = _results()["bench_rows"]
    [failure] = check(rows, "standard", FP, tmp_path)
    assert str(path) in failure and "unreadable" in rows[0]["reference"]


def test_the_command_writes_the_references(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_results()))
    assert main(["reference", "update", str(results), "--reason", "first", "--dir", str(tmp_path / "refs")]) == 0
    assert "reference written" in capsys.readouterr().out
    assert path_for(tmp_path / "refs", "standard", CASE).is_file()
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**_results(), "bench_rows": []}))
    assert main(["reference", "update", str(empty), "--reason", "x", "--dir", str(tmp_path / "refs")]) == 2
    assert "no passed training row with a loss curve" in capsys.readouterr().err


def test_the_run_fails_when_a_curve_left_its_reference(bench_pytester):
    """Through the plugin: the row gets ``reference`` and the run fails, naming the case."""
    bench_pytester.makepyfile(test_suite="""
        import pytest
        from bench.core.profiles import case

        @pytest.mark.parametrize("c", [case("trainer", model="m", device="cpu")])
        def test_case(c, bench_row):
            bench_row["loss_curve"] = [0.7, 0.6, 0.5, 0.45]
    """)
    first = bench_pytester.runpytest_subprocess("--bench-profile=smoke", "-p", "no:cacheprovider")
    assert first.ret == 0
    results = bench_pytester.path / "reports" / "latest" / "results.json"
    assert main(["reference", "update", str(results), "--reason", "first",
                 "--dir", str(bench_pytester.path / "references")]) == 0
    assert bench_pytester.runpytest_subprocess("--bench-profile=smoke", "-p", "no:cacheprovider").ret == 0
    ref = next((bench_pytester.path / "references" / "smoke").glob("*.json"))
    data = json.loads(ref.read_text())
    data["loss_curve"][2] = 0.51
    ref.write_text(json.dumps(data))
    again = bench_pytester.runpytest_subprocess("--bench-profile=smoke", "-p", "no:cacheprovider")
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    assert "left its committed reference" in again.stdout.str() + again.stderr.str()
    row = json.loads(results.read_text())["bench_rows"][0]
    assert row["reference"].startswith("changed") and "step 2" in row["reference"]


def test_the_committed_references_are_well_formed():
    """references/ holds the CPU default's curves: each file names its case, profile, reason and
    the environment it was recorded in, and holds a curve of finite numbers."""
    import math
    from pathlib import Path

    from bench.report.references import ENVIRONMENT, path_for

    root = Path(__file__).resolve().parents[1] / "references"
    files = sorted(root.glob("*/*.json"))
    assert files, "no committed references"
    for f in files:
        ref = json.loads(f.read_text())
        assert path_for(root, ref["profile"], ref["case"]) == f, f
        assert ref["reason"].strip() and set(ENVIRONMENT) <= set(ref["environment"]), f
        assert len(ref["loss_curve"]) >= 2 and all(math.isfinite(v) for v in ref["loss_curve"]), f
