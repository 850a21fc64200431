"""The paths around the verdicts: each test plants one of them in run files built from a real
smoke results file, and each failed on the compare / history of before this change (a lost
instruction count crashed or was a regression, a flaky base hid a broken upgrade, a lost GPU
was "another machine", history merged 1-GPU and 8-GPU nights, nothing compared read "no
regression", an impossible value was judged)."""
import copy
import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report.compare import compare_runs
from bench.report.history import analyse, find_runs
from bench.report.io import ResultsError
from bench.report.runs import load_run

REAL = Path(__file__).parent / "data" / "results_smoke.json"
OP = "suites/test_autograd_ops.py::test_op_fwd_bwd[gelu_tanh-cpu-fp32]"
HW = {"cpu_model": "Test CPU", "cpu_cores": 2, "gpus": [], "gpus_from": "none found"}


def _run(tmp_path, name: str, edit=None, factor: float = 1.0, cases=None) -> str:
    data = json.loads(REAL.read_text())
    data["bench_run"]["run_id"] = name
    data["machine_info"]["bench"]["hardware"] = copy.deepcopy(HW)
    for b in data["benchmarks"]:
        if b["fullname"] == OP:
            b["stats"]["data"] = [v * factor for v in b["stats"]["data"]]
    if cases is not None:
        data["bench_rows"] = [r for r in data["bench_rows"] if r["test"] in cases]
        data["benchmarks"] = [b for b in data["benchmarks"] if b["fullname"] in cases]
    if edit:
        edit(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _row(data: dict, case: str = OP) -> dict:
    return next(r for r in data["bench_rows"] if r["test"] == case)


def _counts(instructions: int | None, skipped: str | None = None, channel: bool = True):
    def edit(data):
        row = _row(data)
        if instructions is not None:
            row.update(instructions=instructions, instructions_spread=0.0001)
        if skipped:
            row["instructions_skipped"] = skipped
        data["bench_run"]["channels"] = {"wall_time": True, "instructions": channel}
    return edit


def _load(paths):
    return [load_run(p) for p in paths]


def _metric(diff, name, case=OP):
    return next((m for m in diff.metrics if m["case"] == case and m["metric"] == name), None)


# 1. A lost instruction count ------------------------------------------------------------------

def test_a_count_left_out_for_cost_on_one_side_is_unsure_with_its_reason_and_never_crashes(tmp_path, capsys):
    """Before: a presence regression, and where wall time was same/unsure the two-channel note
    formatted a None ratio (TypeError, compare exit 2)."""
    why = "too large under callgrind: estimated 900 s > 600 s for the smoke profile"
    a = _run(tmp_path, "a", _counts(1_000_000))
    b = _run(tmp_path, "b", _counts(None, skipped=why))
    diff = compare_runs(_load([a]), _load([b]))
    m = _metric(diff, "instructions")
    assert m["verdict"] == "unsure" and why in m["note"] and "new side" in m["note"]
    assert diff.verdict == "no_regression"
    assert main(["compare", a, b]) == 0
    assert "too large under callgrind" in capsys.readouterr().out


def test_a_count_on_the_new_side_only_with_unchanged_time_does_not_crash_the_two_channel_note(tmp_path):
    """A guard: the instruction entry may have no ratio (a side at zero)."""
    a = _run(tmp_path, "a", _counts(0))
    b = _run(tmp_path, "b", _counts(1_000))
    diff = compare_runs(_load([a]), _load([b]))
    assert _metric(diff, "instructions")["verdict"] == "unsure"


def test_a_run_without_the_instruction_channel_is_not_a_lost_count(tmp_path):
    """--bench-instructions on in A only: the channel is recorded per run; no regression, one warning."""
    a = _run(tmp_path, "a", _counts(1_000_000))
    b = _run(tmp_path, "b", _counts(None, channel=False))
    diff = compare_runs(_load([a]), _load([b]))
    assert _metric(diff, "instructions") is None and diff.verdict == "no_regression"
    assert any("base side only" in w for w in diff.warnings)


def test_a_count_lost_without_a_reason_is_still_a_regression(tmp_path):
    a = _run(tmp_path, "a", _counts(1_000_000))
    b = _run(tmp_path, "b", _counts(None))
    assert _metric(compare_runs(_load([a]), _load([b])), "instructions")["verdict"] == "regression"


# 2. A flaky baseline ---------------------------------------------------------------------------

def _status(status):
    def edit(data):
        if status != "ok":
            _row(data).update(status=status, reason="max abs err 0.3 vs fp64")
    return edit


def test_failing_in_every_new_run_against_a_flaky_base_is_a_regression(tmp_path):
    """The issue's case: mismatch in 1 of 3 A runs, 3 of 3 B runs; before: no entry, exit 0."""
    a = [_run(tmp_path, f"a{i}", _status(s)) for i, s in enumerate(("mismatch", "ok", "ok"))]
    b = [_run(tmp_path, f"b{i}", _status("mismatch")) for i in range(3)]
    diff = compare_runs(_load(a), _load(b))
    c = next(c for c in diff.correctness if c["case"] == OP)
    assert c["change"] == "regressed" and c["base_passed"] == "2/3" and c["new_passed"] == "0/3"
    assert "passed in 2 of 3 base run(s)" in c["base_reason"] and diff.exit_code == 1


def test_flaky_on_both_sides_is_named_not_judged(tmp_path):
    a = [_run(tmp_path, f"a{i}", _status(s)) for i, s in enumerate(("mismatch", "ok", "ok"))]
    b = [_run(tmp_path, f"b{i}", _status(s)) for i, s in enumerate(("ok", "mismatch", "ok"))]
    diff = compare_runs(_load(a), _load(b))
    c = next(c for c in diff.correctness if c["case"] == OP)
    assert c["change"] == "flaky" and diff.verdict == "no_regression"
    from bench.report.compare_render import headline
    assert "1 flaky on both sides" in headline(diff)


def test_a_flaky_base_fixed_in_every_new_run_is_fixed(tmp_path):
    a = [_run(tmp_path, f"a{i}", _status(s)) for i, s in enumerate(("mismatch", "ok"))]
    b = [_run(tmp_path, f"b{i}", _status("ok")) for i in range(2)]
    c = next(c for c in compare_runs(_load(a), _load(b)).correctness if c["case"] == OP)
    assert c["change"] == "fixed"


# 3. B lost the GPU -------------------------------------------------------------------------------

def _gpu(torch_sees: int, fingerprint_failed: bool = False):
    def edit(data):
        fp = data["machine_info"]["bench"]
        fp["hardware"]["gpus"] = ["NVIDIA H200"]
        fp.update(gpu_count=torch_sees, gpu_name="NVIDIA H200" if torch_sees else None,
                  gpu_names=["NVIDIA H200"] * torch_sees)
        if fingerprint_failed:
            hw = fp["hardware"]
            data["machine_info"]["bench"] = {"fingerprint_error": "environment fingerprint failed (RuntimeError: "
                                                                  "driver too old)", "hardware": hw}
    return edit


def test_a_gpu_that_a_used_and_b_cannot_is_a_regression_of_b_not_another_machine(tmp_path, capsys):
    a = _run(tmp_path, "a", _gpu(1))
    b = _run(tmp_path, "b", _gpu(0))
    diff = compare_runs(_load([a]), _load([b]))  # before: ResultsError "different machines"
    assert diff.verdict == "regression" and diff.run_regressions[0]["kind"] == "lost_gpu"
    assert "lost the GPU" in diff.run_regressions[0]["reason"]
    assert main(["compare", a, b]) == 1
    assert "lost the GPU" in capsys.readouterr().out


def test_a_failed_fingerprint_on_b_is_not_another_machine(tmp_path):
    a = _run(tmp_path, "a", _gpu(1))
    b = _run(tmp_path, "b", _gpu(0, fingerprint_failed=True))
    diff = compare_runs(_load([a]), _load([b]))  # before: refused, "different machines"
    assert any("fingerprint failed" in w and "driver too old" in w for w in diff.warnings)
    a2 = _run(tmp_path, "a2")
    b2 = _run(tmp_path, "b2", lambda d: d["machine_info"].update(bench={"fingerprint_error": "boom"}))
    diff = compare_runs(_load([a2]), _load([b2]))  # no identity at all: compared, with a warning
    assert any("no machine identity" in w for w in diff.warnings)


def test_the_machine_identity_comes_from_the_hardware_not_from_torch():
    from bench.core import machine

    hw = machine.hardware()
    assert hw["cpu_model"] and hw["cpu_cores"] and isinstance(hw["gpus"], list)
    assert machine.identity({**hw, "gpus": ["NVIDIA H200", "NVIDIA H200"]}).endswith("+ 2 GPU(s) NVIDIA H200")


def test_gpus_are_read_from_the_pci_bus_without_a_driver(tmp_path):
    from bench.core.machine import _pci

    for name, cls, vendor, device in (("0000:01:00.0", "0x030200", "0x10de", "0x2335"),
                                      ("0000:00:02.0", "0x030000", "0x8086", "0x9a49"),  # Intel iGPU: not a GPU
                                      ("0000:00:1f.0", "0x060100", "0x8086", "0x1234")):
        d = tmp_path / name
        d.mkdir()
        for f, v in (("class", cls), ("vendor", vendor), ("device", device)):
            (d / f).write_text(v + "\n")
    assert _pci(tmp_path) == ["NVIDIA PCI 10de:2335"]


# 5. history's machine identity -------------------------------------------------------------------

def test_history_keeps_1_gpu_and_8_gpu_nights_apart(tmp_path):
    def gpus(n):
        def edit(data):
            data["machine_info"]["bench"]["hardware"]["gpus"] = ["NVIDIA H200"] * n
            data["machine_info"]["bench"].update(gpu_name="NVIDIA H200", gpu_names=["NVIDIA H200"] * n)
        return edit

    for i in range(4):
        _run(tmp_path, f"2026110{i + 1}-020000-smoke-1", gpus(1 if i % 2 else 8))
    groups = analyse(find_runs([str(tmp_path)]))
    assert sorted(len(g.runs) for g in groups) == [2, 2]
    assert {g.machine.split("+ ")[1] for g in groups} == {"1 GPU(s) NVIDIA H200", "8 GPU(s) NVIDIA H200"}


# 7. No regression over nothing; impossible values -----------------------------------------------

def test_two_runs_whose_shared_cases_were_all_skipped_compare_nothing_exit_2(tmp_path, capsys):
    skipped = [r["test"] for r in json.loads(REAL.read_text())["bench_rows"] if r["status"] == "skipped"][:3]
    a, b = _run(tmp_path, "a", cases=skipped), _run(tmp_path, "b", cases=skipped)
    assert main(["compare", a, b]) == 2
    assert "nothing was compared" in capsys.readouterr().err


def test_a_value_its_own_row_marks_impossible_is_left_out_of_the_verdict(tmp_path):
    ddp = next(r["test"] for r in json.loads(REAL.read_text())["bench_rows"]
               if r["suite"] == "ddp" and r["status"] == "ok")

    def eff(value, impossible=False):
        def edit(data):
            row = _row(data, ddp)
            row["scaling_efficiency"] = value
            if impossible:
                row["implausible"] = f"scaling_efficiency {value:.3g} > 1.1 (impossible: the timing is suspect)"
        return edit

    a = [_run(tmp_path, f"a{i}", eff(v)) for i, v in enumerate((0.90, 0.91, 0.89))]
    b = [_run(tmp_path, f"b{i}", eff(v, True)) for i, v in enumerate((3.0, 3.1, 2.9))]
    m = _metric(compare_runs(_load(a), _load(b)), "scaling_efficiency", ddp)
    assert m["verdict"] == "unsure" and "impossible" in m["note"]  # before: an "improvement" of 3.3x


# 4. --until-decided stops when more runs cannot help --------------------------------------------

def test_an_unsure_count_stops_the_sequential_experiment_at_the_first_look(tmp_path, monkeypatch, capsys):
    """Instruction counts 2 % apart with a 1.5 % threshold and a 0.5 % band stay unsure at any
    run count; every other metric is decided. Before: blocks were added up to --max-runs (12
    runs); now the experiment stops after the first look and names the count out of reach."""
    from bench.experiments import ab

    counts = {"a": 1_000_000, "b": 1_020_000}
    calls = []

    def fake_run(index, side, python, args, out, timeout_s, attempt=0):  # a run of its own each time
        calls.append(side)
        return ab.AbRun(index, side, python, 0, 0.01, _run(tmp_path, f"r{index}{side}", _counts(counts[side])),
                        None, 0.0, attempt)

    monkeypatch.setattr(ab, "_run_one", fake_run)
    monkeypatch.setattr(ab, "check_environment", lambda python, label: "2.13.0")
    code = main(["ab", "--a", "pa", "--b", "pb", "--runs", "2", "--until-decided", "--max-runs", "6",
                 "--out", str(tmp_path / "ab"), "--format", "json", "--", "x.py", "--bench-instructions"])
    err = capsys.readouterr().err
    assert code == 0 and len(calls) == 4, err
    assert "instruction counts (--bench-instructions): decided from one run a side" in err  # before the first run
    m = _metric_json(tmp_path / "ab" / "compare.json", "instructions")
    assert m["verdict"] == "unsure" and "out of reach" in m["note"] and "band" in m["out_of_reach"]


def _metric_json(path, name, case=OP):
    return next(m for m in json.loads(Path(path).read_text())["metrics"] if m["case"] == case and m["metric"] == name)


def test_out_of_reach_names_why_more_runs_cannot_decide():
    from bench.experiments.ab import out_of_reach

    assert "band" in out_of_reach({}, "counted", 10, 3)
    assert "zero" in out_of_reach({"test": "none (a side is zero)", "note": "base median is zero"}, "value", 10, 3)
    assert out_of_reach({"sd_log": None}, "timing", 10, 1) is None  # spread not known yet: keep looking
    assert "threshold" in out_of_reach({"sd_log": 0.1, "runs_needed": None, "ratio": 1.1}, "timing", 10, 3)
    assert "can reach 6" in out_of_reach({"sd_log": 0.2, "runs_needed": 40, "ratio": 1.05}, "timing", 6, 3)
    assert out_of_reach({"sd_log": 0.05, "runs_needed": 5, "ratio": 1.3}, "timing", 6, 3) is None


def test_a_lost_gpu_on_b_ends_the_sequential_experiment_with_its_verdict(tmp_path, monkeypatch, capsys):
    """Before: "different machines" read as "no usable run yet", blocks to --max-runs, exit 2."""
    from bench.experiments import ab

    gpus = {"a": 1, "b": 0}
    calls = []
    monkeypatch.setattr(ab, "_run_one", lambda index, side, python, args, out, timeout_s, attempt=0:
                        calls.append(side) or ab.AbRun(index, side, python, 0, 0.01,
                                                       _run(tmp_path, f"r{index}{side}", _gpu(gpus[side])), None,
                                                       0.0, attempt))
    monkeypatch.setattr(ab, "check_environment", lambda python, label: "2.13.0")
    code = main(["ab", "--a", "pa", "--b", "pb", "--runs", "2", "--until-decided", "--max-runs", "6",
                 "--out", str(tmp_path / "ab"), "--format", "json", "--", "x.py"])
    assert code == 1 and len(calls) == 4
    assert json.loads((tmp_path / "ab" / "compare.json").read_text())["run_regressions"][0]["kind"] == "lost_gpu"


# Looks that cost less: alpha spending ------------------------------------------------------------

def test_alpha_spending_boundaries_keep_the_false_alarm_rate_and_spend_more_early_than_bonferroni():
    """An independent simulation of the looks under no change: the chance that any look
    crosses its level stays at alpha (within simulation error), for both spending functions."""
    import numpy as np
    from scipy.stats import norm

    from bench.experiments.plan import Plan

    for spending in ("pocock", "obrien-fleming"):
        plan = Plan(3, until_decided=True, max_runs=9, spending=spending)
        levels, t = plan.look_levels(0.05), np.asarray(plan.look_fractions())
        rng = np.random.default_rng(1)
        w = np.cumsum(rng.standard_normal((100_000, len(t))) * np.sqrt(np.diff(np.concatenate([[0], t]))), axis=1)
        crossed = (np.abs(w / np.sqrt(t)) > norm.isf(np.asarray(levels) / 2)).any(axis=1).mean()
        assert abs(crossed - 0.05) < 0.004, (spending, crossed)
    pocock = Plan(3, until_decided=True, max_runs=9).look_levels(0.05)
    assert min(pocock) > 1.5 * 0.05 / 7  # every look tests at more than the even split


# 6. A time-out ends every process the run started -----------------------------------------------

def test_a_timed_out_run_ends_the_processes_it_started_in_their_own_sessions(tmp_path):
    """Before: the run's process group was killed, and a child in its own session (torchrun
    ranks, the minifier, the callgrind child) lived on."""
    import subprocess
    import time

    from bench.experiments.ab import _run_one

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nsetsid sleep 3171 &\nexec sleep 3172\n")
    fake.chmod(0o755)
    run = _run_one(1, "a", str(fake), [], tmp_path / "out", timeout_s=2)
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", "sleep 317[12]"], capture_output=True, text=True).stdout.split()
    assert not left and run.problem.startswith("timed out") and run.strays >= 1


def test_an_a_a_of_rows_whose_cuda_columns_are_none_calls_nothing_improved(tmp_path):
    """Found by the A/A of this change: a column None on both sides (a CUDA memory column of a
    CPU row) was an "improvement" by presence."""
    def cuda_none(data):
        for r in data["bench_rows"]:
            if r["status"] == "ok":
                r.update(cuda_peak_allocated_mib=None, cuda_peak_reserved_mib=None)

    a = [_run(tmp_path, f"a{i}", cuda_none) for i in range(2)]
    b = [_run(tmp_path, f"b{i}", cuda_none) for i in range(2)]
    diff = compare_runs(_load(a), _load(b))
    assert not [m for m in diff.metrics if m["verdict"] in ("improvement", "regression")]


def test_a_twin_only_one_side_timed_is_not_a_lost_value(tmp_path):
    """The *_norm twins are a channel (the interleaved reference): a side whose code did not
    time it (an older version) has lost nothing."""
    def twin(data):
        row = next(r for r in data["bench_rows"] if r["suite"] == "graph_modes" and r["status"] == "ok")
        row.update(reference_ms=2.0, median_ms_norm=row["median_ms"] / 2.0)
        data["bench_run"]["channels"] = {"wall_time": True, "instructions": False, "reference": True}

    a, b = _run(tmp_path, "a", twin), _run(tmp_path, "b")
    diff = compare_runs(_load([a]), _load([b]))
    assert not [m for m in diff.metrics if m["metric"].endswith("_norm")] and diff.verdict == "no_regression"



def test_a_gpu_box_against_a_cpu_box_is_another_machine_not_a_lost_gpu(tmp_path):
    """Compared anyway (--allow-machine-mismatch), a machine without the GPU did not lose it."""
    def cpu_box(data):
        data["machine_info"]["bench"]["hardware"]["cpu_model"] = "Other CPU"
        data["machine_info"]["bench"].update(gpu_count=0, gpu_name=None, gpu_names=[])

    diff = compare_runs(_load([_run(tmp_path, "a", _gpu(1))]), _load([_run(tmp_path, "b", cpu_box)]),
                        allow_machine_mismatch=True)
    assert not diff.run_regressions


def test_a_case_the_plan_left_out_of_one_run_is_not_flaky(tmp_path):
    def left_out(data):
        _row(data).update(status="skipped", reason="left out by the run's time plan", plan="left_out")

    a = [_run(tmp_path, f"a{i}", left_out if i == 0 else None) for i in range(3)]
    b = [_run(tmp_path, f"b{i}") for i in range(3)]
    assert not [c for c in compare_runs(_load(a), _load(b)).correctness if c["case"] == OP]


def test_a_metric_settled_at_an_earlier_look_is_kept_as_it_was(tmp_path):
    """A sequential experiment's settled entry is neither corrected nor annotated again."""
    a, b = [_run(tmp_path, f"a{i}") for i in range(2)], [_run(tmp_path, f"b{i}") for i in range(2)]
    first = compare_runs(_load(a), _load(b))
    m = next(m for m in first.metrics if m["case"] == OP and m["metric"] == "fwd_bwd_median_ms")
    settled = {(OP, "fwd_bwd_median_ms"): {**m, "verdict": "regression", "note": "decided at look 1"}}
    again = compare_runs(_load(a), _load(b), settled=settled)
    kept = next(m for m in again.metrics if m["case"] == OP and m["metric"] == "fwd_bwd_median_ms")
    assert kept["verdict"] == "regression" and kept["note"] == "decided at look 1"
    assert len(again.metrics) == len(first.metrics)


# 7. Inputs that hid a verdict or crashed it ------------------------------------------------------

def _loaded(share: float, drop: str | None = None):
    def edit(data):
        for row in data["bench_rows"]:
            row["foreign_cpu_share"] = share
        if drop:
            _row(data)[drop] = None
    return edit


def test_a_metric_lost_under_foreign_load_is_still_a_regression(tmp_path):
    """Before: load demoted it to unsure ("one run a side", with three a side), exit 0."""
    a = [_run(tmp_path, f"a{i}", _loaded(0.3)) for i in range(3)]
    b = [_run(tmp_path, f"b{i}", _loaded(0.3, drop="speedup_vs_native")) for i in range(3)]
    m = _metric(compare_runs(_load(a), _load(b)), "speedup_vs_native")
    assert m["verdict"] == "regression" and m["test"] == "presence", m
    assert main(["compare", "--base", *a, "--new", *b]) == 1


def test_a_case_missing_from_some_new_runs_is_a_regression_naming_the_runs(tmp_path):
    """Before: judged from the one new run that had it, "same", exit 0."""
    others = [r["test"] for r in json.loads(REAL.read_text())["bench_rows"] if r["test"] != OP]
    a = [_run(tmp_path, f"a{i}") for i in range(3)]
    b = [_run(tmp_path, "b0")] + [_run(tmp_path, f"b{i}", cases=others) for i in (1, 2)]
    diff = compare_runs(_load(a), _load(b))
    c = next(c for c in diff.correctness if c["case"] == OP)
    assert c["change"] == "regressed" and "absent from 2 of 3 new run(s) (b1, b2" in c["new_reason"], c
    assert diff.exit_code == 1
    assert compare_runs(_load(a), _load(b), allow_selection_mismatch=True).exit_code == 0


def test_a_run_given_twice_on_a_side_counts_once(tmp_path):
    """A run folder and its latest/ copy (same run id) caught by one glob: before, two agreeing
    runs a side, a spread of zero, and noise called a regression (exit 1)."""
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b", factor=1.3)
    copy_b = tmp_path / "latest.json"
    copy_b.write_text(Path(b).read_text())
    twice = compare_runs(_load([a, a]), _load([b, str(copy_b)]))
    assert twice.runs_base == ["a"] and twice.runs_new == ["b"]
    assert sum("given more than once" in w for w in twice.warnings) == 2
    assert _metric(twice, "fwd_bwd_median_ms")["verdict"] == _metric(compare_runs(_load([a]), _load([b])),
                                                                      "fwd_bwd_median_ms")["verdict"]
    same = compare_runs(_load([a]), _load([a]))
    assert any("the same run on both sides" in w for w in same.warnings)


def test_broken_values_in_a_results_file_are_named_not_crashed(tmp_path, capsys):
    """Before: NaN samples crashed compare (AttributeError), negative ones a math domain error
    naming no file; a list as a status crashed; a non-string run id broke history."""
    def samples(value):
        def edit(data):
            next(b for b in data["benchmarks"] if b["fullname"] == OP)["stats"]["data"][0] = value
        return edit

    a = _run(tmp_path, "a")
    for name, edit, words in [("nan", samples(float("nan")), "not finite"), ("neg", samples(-0.1), "negative"),
                              ("status", lambda d: _row(d).update(status=["ok"]), "is not a name"),
                              ("rid", lambda d: d["bench_run"].update(run_id=7), "bench_run.run_id 7")]:
        bad = _run(tmp_path, name, edit)
        assert main(["compare", a, bad]) == 2
        err = capsys.readouterr().err
        assert bad in err and words in err and "unexpected" not in err, err


def test_a_case_twice_in_one_file_keeps_its_worse_row(tmp_path):
    """Before: the later row won, so an ok row after a mismatch hid it (report: NOT GOOD, compare: exit 0)."""
    def twice(data):
        data["bench_rows"].append({**_row(data), "status": "ok"})
        _row(data).update(status="mismatch", reason="planted")
    run = load_run(_run(tmp_path, "t", twice))
    assert run.rows[OP]["status"] == "mismatch"


def test_outputs_and_arguments_that_cannot_work_are_refused_before_any_work(tmp_path, capsys):
    """Before: compare printed its verdict and then lost its exit code to IsADirectoryError;
    report --out FILE, ab --budget nan and --timeout-s -1 ran and failed later."""
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for argv, words in [(["compare", a, b, "--html", str(tmp_path)], "is a folder"),
                        (["report", a, "--out", str(a_file)], "is a file"),
                        (["report", str(tmp_path)], "is a folder, not a results file"),
                        (["ab", "--a", "x", "--b", "y", "--until-decided", "--budget", "nan"], "--budget nan"),
                        (["ab", "--a", "x", "--b", "y", "--timeout-s", "-1"], "--timeout-s -1")]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "unexpected" not in err, (argv, err)


def test_pytest_arguments_that_select_nothing_stop_the_experiment_at_once(tmp_path, monkeypatch):
    """Before: every run "CRASHED: pytest exited 5", to the end of the plan."""
    from bench.experiments import ab

    calls = []
    monkeypatch.setattr(ab, "_run_one", lambda index, side, python, args, out, timeout_s, attempt=0:
                        calls.append(side) or ab.AbRun(index, side, python, 5, 0.01, None, "pytest exited 5"))
    monkeypatch.setattr(ab, "check_environment", lambda python, label: "2.13.0")
    with pytest.raises(ResultsError, match="select no tests"):
        ab.run_experiment("pa", "pb", 3, tmp_path / "ab", ["x.py", "-k", "nothing"], log=lambda text: None)
    assert calls == ["a"]


def test_a_row_with_an_unknown_status_is_a_failure_in_the_report(tmp_path):
    """Before: dropped from every count, and the headline said GOOD."""
    bad = _run(tmp_path, "weird", lambda d: _row(d).update(status="weird"))
    assert main(["report", bad, "--out", str(tmp_path / "r")]) == 0
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "NOT GOOD" in summary and "1 error" in summary and "status 'weird' is not one this version knows" in summary


def test_peak_refuses_a_dtype_and_a_size_it_cannot_time(capsys):
    """Before: --dtype fp8 crashed (KeyError, "please report it"), --n 0 was silently 1024."""
    for argv, words in [(["peak", "--dtype", "fp8"], "--dtype fp8: valid: fp32, bf16, fp16, fp64"),
                        (["peak", "--n", "0"], "--n 0"), (["peak", "--device", "gpu"], "--device: unknown device")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and "unexpected" not in err, err


def test_a_new_run_that_failed_as_a_whole_is_a_regression_of_compare(tmp_path, capsys):
    """Before: its own report said RUN FAILED (a loss curve off its reference), compare exit 0."""
    why = "loss curve of trainer-cpu-fp32 left its committed reference at step 3"
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b", lambda d: d["bench_run"].update(failures=[why]))
    diff = compare_runs(_load([a]), _load([b]))
    assert diff.run_regressions[0]["kind"] == "run_failure" and why in diff.run_regressions[0]["reason"]
    assert main(["compare", a, b]) == 1 and "1 failure(s) of a new run as a whole" in capsys.readouterr().out
    assert compare_runs(_load([b]), _load([_run(tmp_path, "c", lambda d: d["bench_run"].update(failures=[why]))]
                                          )).run_regressions == []  # the base failed alike: not the new side's


def _night(folder: Path, i: int, edit=None) -> str:
    folder.mkdir(exist_ok=True)
    return _run(folder, f"2026120{i}-000000-smoke-1", edit)


def test_history_holds_a_failure_that_changed_kind_a_lost_value_and_an_unfinished_night(tmp_path, capsys):
    """Before, each gave "no change toward worse", exit 0: ok -> mismatch -> oom (the newest
    status was no longer exactly 'mismatch'), a metric None in the last nights, a night whose run
    stopped (complete: false), and a results.json cut off while written (left out unsaid)."""
    for i in range(5):
        _night(tmp_path / "nights", i, {3: lambda d: _row(d).update(status="mismatch", reason="planted"),
                             4: lambda d: _row(d).update(status="oom", reason="planted")}.get(i))
    from bench.report.history import recent_worse

    recent = recent_worse(analyse(find_runs([str(tmp_path / "nights")])), 3)
    assert [(c["from"], c["to"]) for c in recent if c.get("case") == OP] == [("ok", "mismatch")]

    lost = tmp_path / "lost"
    for i in range(5):
        _night(lost, i, (lambda d: _row(d).update(speedup_vs_native=None)) if i >= 3 else None)
    (lost / "results.json").write_text('{"benchmarks": [')  # a night cut off while writing
    assert main(["history", str(lost), "--html", str(tmp_path / "h.html")]) == 1
    out, err = capsys.readouterr()
    assert "speedup_vs_native" in out and "no value in the 2 passing run(s) since" in out
    assert "history: left out" in err and "results.json: not valid JSON" in err

    stopped = tmp_path / "stopped"
    for i in range(3):
        _night(stopped, i, (lambda d: d["bench_run"].update(complete=False)) if i == 2 else None)
    bad = recent_worse(analyse(find_runs([str(stopped)])), 3)
    assert [b["run_id"] for b in bad if "did not finish" in b.get("reason", "")] == ["20261202-000000-smoke-1"]


def test_a_case_too_short_to_judge_alone_takes_its_runs_load(tmp_path):
    """An A/A here called an 8.6x "improvement" on a case of 0.97 s, too short for a load figure
    of its own, in a run that other processes took half the CPU of. Now the run's share judges it."""
    def busy(data):
        data["bench_run"]["foreign_cpu_share"] = 0.5
        for row in data["bench_rows"]:
            row.pop("foreign_cpu_share", None)

    fast = _run(tmp_path, "b", factor=1 / 8)
    quiet = compare_runs(_load([_run(tmp_path, "a")]), _load([fast]))
    loaded = compare_runs(_load([_run(tmp_path, "c", busy)]), _load([fast]))
    assert _metric(quiet, "fwd_bwd_median_ms")["verdict"] == "improvement"
    m = _metric(loaded, "fwd_bwd_median_ms")
    assert m["verdict"] == "unsure" and "timed under load" in m["note"], m


def test_a_run_records_the_share_of_the_cpu_other_processes_took_over_it(tmp_path):
    from bench.core.profiles import settings
    from bench.core.session import Session
    from bench.run_state import RunState

    state = RunState(tmp_path, Session(settings("smoke")))
    state.load.t0 -= 5.0  # as if the run had lasted 5 s (longer than MIN_WALL_S)
    written = state.write(complete=True)
    share = written["bench_run"]["foreign_cpu_share"]
    assert share is not None and 0.0 <= share <= 1.0
    # the report and the history copy are made of what was written: one share, not two readings
    assert json.loads((state.run_dir / "results.json").read_text())["bench_run"]["foreign_cpu_share"] == share
    assert state.results(complete=False)["bench_run"]["foreign_cpu_share"] is None


def test_plain_pytest_benchmark_files_of_one_name_are_distinct_runs(tmp_path):
    """Their run id is the file name: two runs saved as a/bench.json and b/bench.json are two runs,
    not one given twice (a review found the dedupe hid a 1.5x slowdown as "the same run")."""
    def plain(folder: str, factor: float, jitter: float) -> str:
        path = tmp_path / folder / "bench.json"
        path.parent.mkdir()
        data = [v * factor * (1 + jitter) for v in (0.010, 0.011, 0.0105, 0.0102, 0.0108)]
        path.write_text(json.dumps({"benchmarks": [{"fullname": "t.py::test_x", "stats": {"data": data}}]}))
        return str(path)

    base = [plain("a", 1.0, 0.0), plain("b", 1.0, 0.01), plain("e", 1.0, -0.01)]
    new = [plain("c", 1.5, 0.0), plain("d", 1.5, 0.01), plain("f", 1.5, -0.01)]
    diff = compare_runs(_load(base), _load(new))
    assert len(diff.runs_base) == 3 and not any("more than once" in w or "both sides" in w for w in diff.warnings)
    assert diff.exit_code == 1


def test_history_forgets_a_failure_put_right_and_a_single_night_without_a_value(tmp_path):
    """ok -> mismatch -> ok, then left out by a time plan: nothing still fails. A value missing
    for one night only is not a change (one noisy night is not)."""
    from bench.report.history import recent_worse

    plan_out = lambda d: _row(d).update(plan="left_out", status="skipped")  # noqa: E731
    for i, edit in enumerate([None, None, lambda d: _row(d).update(status="mismatch"), None, plan_out]):
        _night(tmp_path / "fixed", i, edit)
    assert not [c for c in recent_worse(analyse(find_runs([str(tmp_path / "fixed")])), 3) if c.get("case") == OP]
    for i in range(5):
        _night(tmp_path / "one", i, (lambda d: _row(d).update(speedup_vs_native=None)) if i == 4 else None)
    assert not recent_worse(analyse(find_runs([str(tmp_path / "one")])), 3)


def test_a_run_failure_both_sides_share_is_not_the_new_sides_however_worded(tmp_path):
    def failed(why):
        return lambda d: d["bench_run"].update(failures=[why])

    a = _run(tmp_path, "a", failed("--hf-model m: none of its 4 row(s) ran (first: error: RuntimeError: foo bar)"))
    b = _run(tmp_path, "b", failed("--hf-model m: none of its 4 row(s) ran (first: error: RuntimeError: foo baz)"))
    assert compare_runs(_load([a]), _load([b])).run_regressions == []
    fixed = _run(tmp_path, "c", failed("--bench-strict-known-failures: 1 case(s) a known-failure entry expects to "
                                       "fail passed (first: x): update known_failures.toml"))
    assert compare_runs(_load([_run(tmp_path, "d")]), _load([fixed])).run_regressions == []  # an upstream fix


def test_an_exit_4_on_b_after_a_ran_is_bs_crash_not_an_argument_error(tmp_path, monkeypatch):
    """A plugin B's torch cannot import is a usage error (exit 4) in B only: the upgrade's breakage."""
    from bench.experiments import ab

    def fake_run(index, side, python, args, out, timeout_s, attempt=0):
        if side == "b":
            return ab.AbRun(index, side, python, 4, 0.01, None, "pytest exited 4")
        return ab.AbRun(index, side, python, 0, 0.01, _run(tmp_path, f"r{index}", None), None, 0.0, attempt)

    monkeypatch.setattr(ab, "_run_one", fake_run)
    monkeypatch.setattr(ab, "check_environment", lambda python, label: "2.13.0")
    runs, _ = ab.run_experiment("pa", "pb", 2, tmp_path / "ab", ["x.py"], log=lambda text: None)
    assert [r.exit_code for r in runs if r.side == "b"] == [4, 4]
    assert ab.compare_experiment(runs).exit_code == 1
