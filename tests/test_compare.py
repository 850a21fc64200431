"""compare as a whole-run diff: run pairs built from a real results file (a smoke run of
the ops, graph-mode and DDP suites) with statuses, metrics, fingerprints and cases edited."""
import copy
import json
import random
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report import stats
from bench.report.compare import compare_runs
from bench.report.runs import load_run

REAL = Path(__file__).parent / "data" / "results_smoke.json"
OK_OP = "suites/test_autograd_ops.py::test_op_fwd_bwd[gelu_tanh-cpu-fp32]"
DDP = "suites/test_ddp.py::test_ddp[mlp-gloo-ws2-cpu]"
STABLE = "suites/test_graph_modes.py::test_graph_mode[custom_ops_mlp-eager-cpu-fp32-train]"  # rounds within 10 %


def _real() -> dict:
    return json.loads(REAL.read_text())


def _row(data, case):
    return next(r for r in data["bench_rows"] if r["test"] == case)


def _bench(data, case):
    return next(b for b in data["benchmarks"] if b["fullname"] == case)


def _write(tmp_path, name, data) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _scaled(data, factor, seed, cases=None, noise=0.03):
    """A run like ``data`` whose timing samples are scaled (per run, not per round) by
    ``factor`` for ``cases`` (all when None), with a per-run shift of ``noise``."""
    rng = random.Random(seed)
    out = copy.deepcopy(data)
    out["bench_run"]["run_id"] = f"run-{seed}"
    for b in out["benchmarks"]:
        shift = 1 + rng.gauss(0, noise)
        f = factor if cases is None or b["fullname"] in cases else 1.0
        b["stats"]["data"] = [v * f * shift for v in b["stats"]["data"]]
    return out


def test_unchanged_run_is_no_regression(tmp_path, capsys):
    path = _write(tmp_path, "a", _real())
    assert main(["compare", path, path, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "no_regression" and out["correctness"] == [] and out["environment"] == []
    assert {"case", "suite", "metric", "unit", "better", "base", "new", "ratio", "p_value", "verdict"} <= \
        set(out["metrics"][0])
    assert set(out) >= {"verdict", "environment", "correctness", "metrics", "drift", "only_in_base", "only_in_new",
                        "warnings"}


def test_status_regression_is_exit_1_with_both_reasons_and_a_repro(tmp_path, capsys):
    base = _real()
    new = copy.deepcopy(base)
    _row(new, OK_OP).update(status="mismatch", reason="max abs err 0.5 > 1e-4")
    assert main(["compare", _write(tmp_path, "a", base), _write(tmp_path, "b", new), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "regression"
    change = [c for c in out["correctness"] if c["case"] == OK_OP][0]
    assert change["change"] == "regressed" and change["base_status"] == "ok" and change["new_status"] == "mismatch"
    assert "0.5" in change["new_reason"]
    assert OK_OP in out["repro"][OK_OP] and "--bench-profile=smoke" in out["repro"][OK_OP]
    # and the other way round it is a fix, exit 0
    assert main(["compare", _write(tmp_path, "b", new), _write(tmp_path, "a", base), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["correctness"][0]["change"] == "fixed"


def test_checks_passed_drop_is_a_status_regression(tmp_path):
    base = _real()
    new = copy.deepcopy(base)
    row = _row(new, OK_OP)
    done, total = row["checks_passed"].split("/")
    row["checks_passed"] = f"{int(done) - 1}/{total}"
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "b", new))])
    assert [c["case"] for c in diff.status_regressions] == [OK_OP]


def test_environment_profile_incomplete_and_missing_cases(tmp_path, capsys):
    base = _real()
    new = copy.deepcopy(base)
    new["machine_info"]["bench"].update(torch="2.14.1", transformers="5.99")
    new["machine_info"]["bench"]["model_hashes"] = {"all-MiniLM-L6-v2": "abc"}
    new["bench_rows"] = [r for r in new["bench_rows"] if r["test"] != OK_OP]
    new["bench_run"]["complete"] = False
    a, b = _write(tmp_path, "a", base), _write(tmp_path, "b", new)
    # a case the new run lost is a correctness change (exit 1), unless fewer cases were selected
    assert main(["compare", a, b, "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    keys = {e["key"]: e for e in out["environment"]}
    assert keys["torch"]["new"] == "2.14.1" and "transformers" in keys and "model_hashes.all-MiniLM-L6-v2" in keys
    assert OK_OP in out["only_in_base"]
    lost = [c for c in out["correctness"] if c["case"] == OK_OP][0]
    assert lost["change"] == "regressed" and lost["new_status"] == "missing" and "absent" in lost["new_reason"]
    assert any("incomplete" in w for w in out["warnings"])
    assert main(["compare", a, b, "--allow-selection-mismatch"]) == 0
    capsys.readouterr()
    new["bench_run"]["profile"] = "standard"
    b = _write(tmp_path, "b", new)
    assert main(["compare", a, b]) == 2
    err = capsys.readouterr().err
    assert "smoke" in err and "standard" in err and err.strip().count("\n") == 0
    assert main(["compare", a, b, "--allow-profile-mismatch", "--allow-selection-mismatch"]) == 0


def test_error_growth_is_drift_not_regression(tmp_path):
    base = _real()
    new = copy.deepcopy(base)
    _row(base, DDP)["grad_max_abs_diff"] = 3e-8
    _row(new, DDP)["grad_max_abs_diff"] = 6e-6  # 200x, still inside the 1e-5 tolerance
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "b", new))])
    assert [(d["case"], d["metric"]) for d in diff.drift] == [(DDP, "grad_max_abs_diff")]
    assert diff.exit_code == 0


def test_new_warnings_are_listed(tmp_path):
    base = _real()
    new = copy.deepcopy(base)
    _row(new, OK_OP)["warnings"] = "UserWarning: There is a performance drop because we have not yet implemented " \
                                   "the batching rule for bench::gelu_tanh"
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "b", new))])
    assert [w["case"] for w in diff.new_warnings] == [OK_OP] and "batching rule" in diff.new_warnings[0]["warning"]


def test_single_run_pair_calls_a_between_run_sized_change_unsure_not_a_regression(tmp_path):
    """One run a side cannot tell a 30 % shift from run-to-run noise: unsure, exit 0; a
    6x slowdown whose rounds do not overlap is beyond anything two runs of unchanged code
    showed (3.75x at most): a regression. A 3x slowdown stays unsure."""
    base = _real()
    slow = _scaled(base, 1.3, seed=1, cases={STABLE}, noise=0.0)
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "b", slow))])
    m = [m for m in diff.metrics if m["case"] == STABLE and m["metric"] == "median_ms"][0]
    assert m["verdict"] == "unsure" and m["ratio"] == pytest.approx(1.3) and diff.exit_code == 0
    very = _scaled(base, 6.0, seed=1, cases={STABLE}, noise=0.0)
    very = _scaled(very, 3.0, seed=1, cases={OK_OP}, noise=0.0)
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "c", very))])
    assert [m["case"] for m in diff.regressions] == [STABLE] and diff.exit_code == 1
    noisy = [m for m in diff.metrics if m["case"] == OK_OP and m["metric"] == "fwd_bwd_median_ms"][0]
    assert noisy["verdict"] == "unsure"


def test_several_runs_a_side_catch_a_real_slowdown_and_not_run_noise(tmp_path):
    """Five runs a side with 3 % run-to-run shifts: a 25 % slowdown of one case is a
    regression, the other cases are not (Benjamini-Hochberg over all of them)."""
    base = _real()
    a = [_write(tmp_path, f"a{i}", _scaled(base, 1.0, seed=i)) for i in range(5)]
    b = [_write(tmp_path, f"b{i}", _scaled(base, 1.0, seed=10 + i)) for i in range(5)]
    c = [_write(tmp_path, f"c{i}", _scaled(base, 1.25, seed=20 + i, cases={OK_OP})) for i in range(5)]
    assert main(["compare", "--base", *a, "--new", *b]) == 0
    diff = compare_runs([load_run(p) for p in a], [load_run(p) for p in c])
    assert [m["case"] for m in diff.regressions] == [OK_OP]
    assert diff.regressions[0]["runs_base"] == 5 and "q_value" in diff.regressions[0]
    assert main(["compare", "--base", *a, "--new", *c, "--html", str(tmp_path / "compare.html")]) == 1
    page = (tmp_path / "compare.html").read_text()
    assert "REGRESSION" in page and "data:image/png;base64" in page


def test_baseline_latest_picks_same_profile_and_machine(tmp_path, capsys):
    history = tmp_path / "reports" / "history"
    history.mkdir(parents=True)
    base = _real()
    other_machine = copy.deepcopy(base)
    other_machine["machine_info"]["bench"]["cpu_model"] = "another CPU"
    other_machine["bench_run"]["run_id"] = "20990101-000002-smoke-2"
    base["bench_run"]["run_id"] = "20990101-000001-smoke-1"
    (history / "20990101-000001-smoke-1.json").write_text(json.dumps(base))
    (history / "20990101-000002-smoke-2.json").write_text(json.dumps(other_machine))
    new = copy.deepcopy(base)
    new["bench_run"]["run_id"] = "20990101-000003-smoke-3"
    path = _write(tmp_path, "new", new)
    assert main(["compare", "--baseline", "latest", "--reports-dir", str(tmp_path / "reports"), path]) == 0
    assert "20990101-000001-smoke-1" in capsys.readouterr().err


def test_plain_pytest_benchmark_files_still_compare(tmp_path):
    data = json.loads((Path(__file__).parent / "data" / "pytest_benchmark_recorded.json").read_text())
    path = _write(tmp_path, "p", data)
    assert main(["compare", path, path]) == 0


def test_benjamini_hochberg_against_hand_count():
    # p = .01 .04 .03 .20, m = 4: sorted .01 .03 .04 .20 -> .04 .06 .0533 .20, then monotone
    q = stats.benjamini_hochberg([0.01, 0.04, 0.03, None, 0.20])
    assert q[0] == pytest.approx(0.04) and q[3] is None
    assert q[1] == pytest.approx(0.05333, abs=1e-4) and q[2] == pytest.approx(0.05333, abs=1e-4)
    assert q[4] == pytest.approx(0.20)


def test_counts_from_zero_checks_from_zero_and_zero_errors_are_judged(tmp_path, capsys):
    """Review findings: graph breaks 0 -> 1 is a regression; 10/10 -> 0/10 checks is a status
    regression; an error growing from 0.0 is drift and the JSON stays valid."""
    base = _real()
    new = copy.deepcopy(base)
    gm = next(r for r in base["bench_rows"] if r["suite"] == "graph_modes" and r["status"] == "ok")
    gm["graph_breaks"] = 0
    _row(new, gm["test"]).update(graph_breaks=1, max_abs_err=1e-3)
    _row(base, gm["test"])["max_abs_err"] = 0.0
    _row(base, OK_OP)["checks_passed"] = "10/10"
    _row(new, OK_OP)["checks_passed"] = "0/10"
    assert main(["compare", _write(tmp_path, "a", base), _write(tmp_path, "b", new), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [m["case"] for m in out["metrics"] if m["verdict"] == "regression"] == [gm["test"]]
    assert [c["case"] for c in out["correctness"] if c["change"] == "regressed"] == [OK_OP]
    assert [d["metric"] for d in out["drift"]] == ["max_abs_err"]


def test_a_new_failure_among_non_ok_statuses_is_a_regression(tmp_path):
    base = _real()
    new = copy.deepcopy(base)
    case = next(r["test"] for r in base["bench_rows"] if r["status"] == "unsupported")
    _row(new, case).update(status="error", reason="KeyError in the builder")
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "b", new))])
    assert [(c["case"], c["change"]) for c in diff.correctness] == [(case, "regressed")]


def test_malformed_results_are_exit_2_one_line(tmp_path, capsys):
    data = _real()
    data["benchmarks"][0]["stats"] = {"median": None}
    path = _write(tmp_path, "bad", data)
    assert main(["compare", path, path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "malformed" in err


def test_plain_pytest_benchmark_files_judge_their_timings(tmp_path):
    data = json.loads((Path(__file__).parent / "data" / "pytest_benchmark_recorded.json").read_text())
    slow = copy.deepcopy(data)
    for b in slow["benchmarks"]:
        b["stats"]["data"] = [v * 3 for v in b["stats"].get("data", [])] or b["stats"].get("data")
        b["stats"]["median"] *= 3
    diff = compare_runs([load_run(_write(tmp_path, "p", data))], [load_run(_write(tmp_path, "s", slow))])
    assert diff.metrics and all(m["ratio"] == pytest.approx(3.0) for m in diff.metrics if m["metric"] == "median_ms")


def test_every_question_declares_its_error_columns_and_drift_watches_them(tmp_path):
    """The sharded and generation error columns were watched nowhere: a parameter difference
    growing from 5e-7 to 9e-6 under a 1e-5 tolerance went unreported. Drift now reads each
    question's declared ``errors``."""
    from bench.core.question import ERRORS

    assert {"loss_max_abs_diff", "param_max_abs_diff", "update_rel_err_max"} <= set(ERRORS["sharded"])
    assert "decode_logits_max_abs_diff" in ERRORS["generation"]
    base = _real()
    new = copy.deepcopy(base)
    rows = {"sharded": ("suites/test_sharded.py::test_sharded[llama-fsdp-ws2-cpu]", "param_max_abs_diff", 5e-7, 9e-6),
            "generation": ("suites/test_generation.py::test_generation[llama-compile-cpu]",
                           "decode_logits_max_abs_diff", 2e-6, 2e-3)}
    for suite, (case, col, before, after) in rows.items():
        base["bench_rows"].append({"suite": suite, "test": case, "status": "ok", col: before})
        new["bench_rows"].append({"suite": suite, "test": case, "status": "ok", col: after})
    diff = compare_runs([load_run(_write(tmp_path, "a", base))], [load_run(_write(tmp_path, "b", new))])
    drift = {(d["case"], d["metric"]): d["factor"] for d in diff.drift}
    assert drift.keys() == {(case, col) for case, col, _, _ in rows.values()}
    assert drift[rows["generation"][:2]] == pytest.approx(1000)
    assert diff.exit_code == 0  # drift is a warning, not a regression
