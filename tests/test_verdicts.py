"""A verdict claims only what its runs show: synthetic run files built from a real smoke
results file, each case below failed on the compare of before this change (which called
"same" whatever was not significant, and dropped lost cases, values and checks)."""
import json
import math
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report import stats
from bench.report.compare import compare_runs
from bench.report.runs import load_run

REAL = Path(__file__).parent / "data" / "results_smoke.json"
OP = "suites/test_autograd_ops.py::test_op_fwd_bwd[gelu_tanh-cpu-fp32]"


def _real() -> dict:
    return json.loads(REAL.read_text())


def _run(tmp_path, name: str, medians: dict[str, float], edit=None) -> str:
    """A results file whose case ``c`` has every round at ``medians[c]`` ms (others untouched)."""
    data = _real()
    data["bench_run"]["run_id"] = name
    for b in data["benchmarks"]:
        if b["fullname"] in medians:
            b["stats"]["data"] = [medians[b["fullname"]] / 1e3] * len(b["stats"]["data"])
    if edit:
        edit(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _metric(diff, case=OP, name="fwd_bwd_median_ms") -> dict:
    return next(m for m in diff.metrics if m["case"] == case and m["metric"] == name)


def _diff(tmp_path, base: list[float], new: list[float], **kw):
    a = [load_run(_run(tmp_path, f"a{i}", {OP: v})) for i, v in enumerate(base)]
    b = [load_run(_run(tmp_path, f"b{i}", {OP: v})) for i, v in enumerate(new)]
    return compare_runs(a, b, **kw)


def test_a_1_93x_slowdown_at_three_runs_is_never_same(tmp_path):
    """The issue's case: every new run slower, 1.93x, Welch not significant at 3 runs."""
    m = _metric(_diff(tmp_path, [10, 14, 20], [22, 27, 41]))
    assert m["verdict"] in ("unsure", "regression")
    assert m["verdict"] != "same" and m["ci_low"] < m["ratio"] < m["ci_high"]
    assert m["ratio"] == pytest.approx(math.exp((math.log(22 * 27 * 41) - math.log(10 * 14 * 20)) / 3))
    if m["verdict"] == "unsure":
        assert m["runs_needed"] and m["runs_needed"] > 3


def test_a_3_percent_change_with_a_tight_interval_is_same(tmp_path):
    diff = _diff(tmp_path, [10.0, 10.1, 9.9, 10.05], [10.3, 10.35, 10.25, 10.3])
    m = _metric(diff)
    assert m["verdict"] == "same" and 1.0 < m["ci_low"] < m["ci_high"] < 1.1
    assert m["q_value"] < 0.05 and m["q_value"] == m["q_same"]


def test_equivalence_needs_spread_not_a_point_estimate(tmp_path):
    """One run a side: nothing is known of run-to-run noise, so even an identical value is
    unsure; two runs a side with a wide spread stay unsure too."""
    assert _metric(_diff(tmp_path, [10.0], [10.0]))["verdict"] == "unsure"
    m = _metric(_diff(tmp_path, [10.0, 14.0], [11.0, 13.0]))
    assert m["verdict"] == "unsure" and m["ci_high"] > 1.1


def test_one_side_with_runs_lends_its_spread_to_the_other(tmp_path):
    m = _metric(_diff(tmp_path, [10.0, 10.05, 9.95, 10.0, 10.02], [10.1]))
    assert m["verdict"] == "same" and "spread of the side with runs" in m["test"]


def test_a_clear_regression_is_called_with_its_interval(tmp_path):
    m = _metric(_diff(tmp_path, [10.0, 10.2, 9.8], [13.0, 13.3, 12.8]))
    assert m["verdict"] == "regression" and m["ci_low"] > 1.1 and m["q_value"] < 0.05


def test_a_nan_or_missing_metric_in_new_is_a_change_toward_worse(tmp_path):
    def nan_loss(data):
        row = next(r for r in data["bench_rows"] if r["test"] == OP)
        row["speedup_vs_native"] = float("nan")

    base = load_run(_run(tmp_path, "a", {}))
    new = load_run(_run(tmp_path, "b", {}, nan_loss))
    diff = compare_runs([base], [new])
    m = _metric(diff, name="speedup_vs_native")
    assert m["verdict"] == "regression" and "NaN" in m["note"] and diff.exit_code == 1


def test_checks_that_became_not_applicable_are_a_correctness_change(tmp_path):
    def fewer(data):
        row = next(r for r in data["bench_rows"] if r["test"] == OP)
        row["checks_passed"] = "8/8"
        row["not_applicable"] += "; gradgradcheck: double not supported; jvp: no rule"

    diff = compare_runs([load_run(_run(tmp_path, "a", {}))], [load_run(_run(tmp_path, "b", {}, fewer))])
    change = next(c for c in diff.correctness if c["case"] == OP)
    assert change["change"] == "regressed" and "gradgradcheck" in change["new_reason"] \
        and "jvp" in change["new_reason"]


def test_runs_from_different_machines_are_refused_unless_allowed(tmp_path, capsys):
    def other(data):
        data["machine_info"]["bench"]["cpu_model"] = "Some other CPU"

    a, b = _run(tmp_path, "a", {}), _run(tmp_path, "b", {}, other)
    assert main(["compare", a, b]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different machines" in err and "--allow-machine-mismatch" in err
    assert main(["compare", a, b, "--allow-machine-mismatch"]) == 0


def test_an_unexpected_crash_of_the_tool_is_exit_2_in_one_line(tmp_path, capsys, monkeypatch):
    import bench.report.compare as compare

    def boom(*a, **k):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(compare, "compare_runs", boom)
    path = _run(tmp_path, "a", {})
    assert main(["compare", path, path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ZeroDivisionError" in err


def test_an_all_skipped_or_no_ok_report_never_headlines_good():
    import pandas as pd

    from bench.report.headline import build

    skipped = {"devices": pd.DataFrame([{"status": "skipped", "reason": "needs CUDA"}] * 3)}
    head = build(skipped, {"complete": True}, [])
    assert not head.good and head.verdict.startswith("NOT GOOD") and "0 ok" in head.verdict
    assert "NOTHING WAS MEASURED" in head.verdict and "3 skipped" in head.verdict


def test_runs_needed_and_detectable_change_against_hand_counts():
    from scipy.stats import t

    def need(ratio, sd, gap):  # the smallest n with (t(0.95, 2n - 2) + z(0.8)) * sd * sqrt(2 / n) <= gap
        return next(n for n in range(2, 200) if (t.ppf(0.95, 2 * n - 2) + 0.8416) * sd * math.sqrt(2 / n) <= gap)

    # inside the band: ratio 1.02, sd 0.05, gap log 1.1 - log 1.02 = 0.0755
    assert stats.runs_needed(1.02, 0.05, 0.10) == need(1.02, 0.05, math.log(1.1) - math.log(1.02)) == 7
    # beyond: ratio 1.3, sd 0.2, gap log 1.3 - log 1.1
    assert stats.runs_needed(1.3, 0.2, 0.10) == need(1.3, 0.2, math.log(1.3) - math.log(1.1))
    assert stats.runs_needed(1.02, 0.001, 0.10, more_than=3) == 4  # never fewer than the runs that left it open
    assert stats.runs_needed(1.1, 0.2, 0.10) is None  # on the threshold: no run count decides it
    assert stats.runs_needed(1.2, None, 0.10) is None
    assert stats.detectable_change(0.1, 3) == pytest.approx(math.exp(2.8016 * 0.1 * math.sqrt(2 / 3)), rel=1e-3)


def test_the_compare_page_draws_intervals_and_lists_unsure(tmp_path):
    """The issue's new-user case: 1.35x slower at 3 runs a side is listed (not 'none'), and
    the headline does not say plain 'no regression'."""
    from bench.report.compare_render import render, render_html

    diff = _diff(tmp_path, [10, 12, 9], [13.5, 16.2, 12.1])
    m = _metric(diff)
    assert m["verdict"] in ("unsure", "regression")
    text = render(diff, "table")
    assert "changed or unsure metrics ==\nnone" not in text and "interval" in text  # the ratio's interval
    assert max(map(len, text.splitlines())) <= 120  # the plain table fits a terminal
    if m["verdict"] == "unsure":
        assert text.splitlines()[0].startswith("no regression shown") and "1 unsure" in text
    assert "data:image/png;base64" in render_html(diff)


def test_the_json_keeps_the_contract_shape_and_adds_the_evidence(tmp_path, capsys):
    a = [_run(tmp_path, f"a{i}", {OP: v}) for i, v in enumerate([10, 10.2, 9.9])]
    b = [_run(tmp_path, f"b{i}", {OP: v}) for i, v in enumerate([10.1, 10.0, 10.1])]
    main(["compare", "--base", *a, "--new", *b, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    m = next(m for m in out["metrics"] if m["case"] == OP and m["metric"] == "fwd_bwd_median_ms")
    assert {"case", "suite", "metric", "unit", "better", "base", "new", "ratio", "p_value", "verdict", "ci_low",
            "ci_high", "q_value"} <= set(m)
    assert "interval" in out["method"]


def test_a_crash_on_b_only_is_a_regression():
    from bench.report.compare import Diff

    diff = Diff(["a"], ["b"], [], [], [], [], [], [], [], [], {}, {})
    diff.crashes = [{"run": "run 2", "side": "new", "problem": "pytest exited -11"}]
    assert diff.exit_code == 1
    diff.crashes.append({"run": "run 1", "side": "base", "problem": "pytest exited -11"})
    assert diff.exit_code == 0  # both sides crash: the environment, not the upgrade


def test_a_burst_of_foreign_load_is_named_per_case(tmp_path):
    """A case during which another process spins is flagged in its own row; the quiet case
    next to it is not; compare names the busy case in its note."""
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["bench.pytest_plugin"]\n')
    (tmp_path / "test_load.py").write_text('''
import os, subprocess, sys, time
import pytest
from bench.core.profiles import case

@pytest.mark.parametrize("c", [case("devices", model=m, device="cpu", dtype="fp32", phase="inference",
                                    batch_size=1) for m in ("quiet", "busy")])
def test_case(c, bench_row, benchmark):
    if c["model"] == "busy":  # other processes: started by a launcher that exits at once, so not our children
        code = "import time; t = time.time()\\nwhile time.time() - t < 1.5: pass"
        launcher = f"import subprocess, sys\\nfor _ in range({os.cpu_count() or 1}): " \\
                   f"subprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True)"
        subprocess.run([sys.executable, "-c", launcher], check=True)
    benchmark.pedantic(time.sleep, args=(0.3,), rounds=4, iterations=1)
''')
    root = str(Path(__file__).resolve().parents[1])
    env = {**__import__("os").environ, "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-m", "pytest", "test_load.py", "--benchmark-only", "-q",
                          f"--bench-report-dir={tmp_path / 'r'}", "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {r["model"]: r for r in json.loads((tmp_path / "r" / "latest" / "results.json").read_text())["bench_rows"]}
    assert rows["busy"]["foreign_cpu_share"] > 0.3 and "other processes" in rows["busy"]["load_note"]
    assert rows["quiet"]["foreign_cpu_share"] < 0.10 and "load_note" not in rows["quiet"]


def test_results_files_carry_a_schema_older_ones_are_upgraded_newer_refused(tmp_path, capsys):
    from bench.core.rows import RESULTS_SCHEMA
    from bench.report.io import load_results

    old = load_results(REAL)  # written before the schema existed
    assert old["bench_run"]["schema"] == RESULTS_SCHEMA and old["bench_run"]["upgraded_from"] == 1

    def newer(data):
        data["bench_run"]["schema"] = RESULTS_SCHEMA + 1

    path = _run(tmp_path, "future", {}, newer)
    assert main(["compare", path, path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "newer torch-hf-bench" in err and f"schema {RESULTS_SCHEMA + 1}" in err


def test_a_file_written_by_todays_code_is_read_as_it_is():
    """tests/data/results_schema3_generation.json: a smoke run of the generation suite written
    by this version: read without an upgrade, and compared with itself it regresses nothing."""
    from bench.core.rows import RESULTS_SCHEMA
    from bench.report.io import load_results

    path = REAL.parent / "results_schema3_generation.json"
    data = load_results(path)
    assert data["bench_run"]["schema"] == RESULTS_SCHEMA == 3 and "upgraded_from" not in data["bench_run"]
    assert {r["suite"] for r in data["bench_rows"]} == {"generation"}
    diff = compare_runs([load_run(path)], [load_run(path)])
    assert diff.exit_code == 0 and not diff.regressions, diff


def test_a_schema_2_file_reads_with_todays_column_names_and_compares_case_for_case():
    """Schema 2 named generation's columns attn / kv_bytes_per_token / first_diff_position and
    sharded's checkpoint / fsdp2: read, it has today's names, so an old run compared with a new
    one matches every case and judges the renamed metric instead of losing it."""
    from bench.report.io import load_results, upgrade

    old = REAL.parent / "results_schema2_generation.json"
    data = load_results(old)
    assert data["bench_run"]["upgraded_from"] == 2
    rows = data["bench_rows"]
    assert all("attn" not in r and "kv_bytes_per_token" not in r and "first_diff_position" not in r for r in rows)
    assert {r["attention"] for r in rows} >= {"sdpa", "eager"} and any(r.get("kv_cache_bytes_per_token") for r in rows)
    diff = compare_runs([load_run(old)], [load_run(REAL.parent / "results_schema3_generation.json")])
    assert not diff.only_in_base  # every old case found under today's id (the new file adds CUDA rows)
    assert [m for m in diff.metrics if m["metric"] == "kv_cache_bytes_per_token"]
    assert not [c for c in diff.correctness if c["change"] == "regressed"]
    old_id = "suites/test_sharded.py::test_sharded[llama-fsdp2-ws2-none-0.0-fp32-cpu]"
    row = {"suite": "sharded", "strategy": "fsdp2", "checkpoint": "none", "test": old_id}
    bench = {"fullname": old_id, "name": old_id.split("::")[1], "param": "llama-fsdp2-ws2-none-0.0-fp32-cpu",
             "params": {"c": {"strategy": "fsdp2", "checkpoint": "none"}}, "extra_info": dict(row)}
    up = upgrade({"bench_run": {"schema": 2}, "benchmarks": [bench], "bench_rows": [row]})
    new_id = "suites/test_sharded.py::test_sharded[llama-fsdp-ws2-none-0.0-fp32-cpu]"
    assert up["bench_rows"][0] == {"suite": "sharded", "strategy": "fsdp", "checkpointing": "none", "test": new_id}
    b = up["benchmarks"][0]
    assert b["fullname"] == new_id and b["name"] == "test_sharded[llama-fsdp-ws2-none-0.0-fp32-cpu]"
    assert b["param"] == "llama-fsdp-ws2-none-0.0-fp32-cpu"
    assert b["params"] == {"c": {"strategy": "fsdp", "checkpointing": "none"}}
    assert b["extra_info"]["checkpointing"] == "none" and "checkpoint" not in b["extra_info"]
    # a plain pytest-benchmark file (no bench_run: its rows are its extra_info) is renamed too,
    # and an upgraded file upgrades to itself
    plain = upgrade({"benchmarks": [bench]})
    assert plain["benchmarks"][0] == b and "bench_rows" not in plain
    assert upgrade(upgrade({"benchmarks": [bench]})) == plain


def test_a_value_that_appears_is_judged_only_where_base_had_the_column(tmp_path):
    """base None -> new value: an improvement (a time-to-accuracy now reached); a column the
    base run's code never wrote is not a change."""
    def none_speedup(data):
        next(r for r in data["bench_rows"] if r["test"] == OP)["speedup_vs_native"] = None

    def no_column(data):
        del next(r for r in data["bench_rows"] if r["test"] == OP)["speedup_vs_native"]

    new = load_run(_run(tmp_path, "b", {}))
    diff = compare_runs([load_run(_run(tmp_path, "a", {}, none_speedup))], [new])
    assert _metric(diff, name="speedup_vs_native")["verdict"] == "improvement"
    diff = compare_runs([load_run(_run(tmp_path, "c", {}, no_column))], [new])
    assert not [m for m in diff.metrics if m["case"] == OP and m["metric"] == "speedup_vs_native"]


def test_review_findings_single_runs_zero_sides_partial_loss_and_all_b_crashed(tmp_path):
    """A one-run change beyond the floor is decided with the others (BH); a zero median never
    claims a change without a test, and 'same' only when every value is zero; a value lost in
    one of several new runs is a regression; every B run crashing is exit 1, not a tool error."""
    from bench.core.rows import metric_of
    from bench.experiments.ab import AbRun, compare_experiment
    from bench.report.verdicts import _judge_zero

    comm = metric_of("ddp", "comm_share")
    assert _judge_zero(comm, [0, 0], [1e-6, 2e-6], 0.0, 1.5e-6)["verdict"] == "unsure"
    assert _judge_zero(comm, [0, 0, 0], [0, 0, 9], 0.0, 0.0)["verdict"] == "unsure"
    assert _judge_zero(comm, [0, 0], [0, 0], 0.0, 0.0)["verdict"] == "same"

    def lose_one(data):
        next(r for r in data["bench_rows"] if r["test"] == OP)["speedup_vs_native"] = float("nan")

    base = [load_run(_run(tmp_path, f"a{i}", {})) for i in range(3)]
    new = [load_run(_run(tmp_path, "b0", {})), load_run(_run(tmp_path, "b1", {}, lose_one)),
           load_run(_run(tmp_path, "b2", {}))]
    m = _metric(compare_runs(base, new), name="speedup_vs_native")
    assert m["verdict"] == "regression" and "1 of 3" in m["note"]

    a = [AbRun(i, "a", "pa", 0, 1.0, _run(tmp_path, f"r{i}", {}), None) for i in (1, 4)]
    b = [AbRun(i, "b", "pb", -11, 1.0, None, "pytest exited -11") for i in (2, 3)]
    diff = compare_experiment(a + b)
    assert diff.exit_code == 1 and len(diff.crash_regressions) == 2
    a_crash = AbRun(5, "a", "pa", -11, 1.0, None, "pytest exited -11")
    assert compare_experiment(a + b + [a_crash]).exit_code == 1  # 2 crashes of B against 1 of A
