"""The run-level time plan: over budget, cases get fewer rounds, then the costliest shrink, then
the costliest are left out with the reason and the command that times them; the plan fits,
never leaves out an essential case nor a plain correctness check, and one selection on one
machine gets one plan. The report says where the time went."""
import json
import random

import pytest

from bench.core.plan import Cost, make_plan

CASES = [  # (id, suite, cost): planted, a 100 s budget
    ("s::cheap[a]", "devices", Cost(fixed_s=1.0, timed_s=2.0, min_timed_s=0.2)),
    ("s::cheap[b]", "devices", Cost(fixed_s=1.0, timed_s=2.0, min_timed_s=0.2, essential=True)),
    ("s::slow_call[bf16]", "devices", Cost(fixed_s=40.0, timed_s=60.0, min_timed_s=40.0, shrink=0.25,
                                          shrink_note="batch 64 -> 16", why="bf16 is emulated on this CPU")),
    ("s::launch[ws2]", "ddp", Cost(fixed_s=30.0)),
    ("s::launch[ws4]", "ddp", Cost(fixed_s=45.0, why="four ranks")),
    ("s::essential_launch", "ddp", Cost(fixed_s=40.0, essential=True)),
]


def _plan(budget, cases=CASES):
    return make_plan(list(cases), budget, "--bench-profile=full")


def test_under_budget_nothing_changes():
    plan = _plan(1000.0)
    assert {d.action for d in plan.decisions} == {"full"} and plan.total_s == pytest.approx(221.0)


def test_fewer_rounds_first_then_shrink_then_leave_out_within_budget():
    rounds_only = _plan(200.0)  # 221 at full, 197.4 at the fewest rounds
    assert {d.case: d.action for d in rounds_only.decisions}["s::slow_call[bf16]"] == "min_rounds"
    assert rounds_only.total_s <= 200.0 and "left_out" not in {d.action for d in rounds_only.decisions}

    shrunk = _plan(140.0)  # the slow call alone (80 s) is far above its share (23 s): shrunk, named
    slow = shrunk.of("s::slow_call[bf16]")
    assert slow.action == "shrunk" and "batch 64 -> 16" in slow.note and shrunk.total_s <= 140.0

    tight = _plan(60.0)
    actions = {d.case: d for d in tight.decisions}
    assert tight.total_s <= 60.0
    left = [d for d in tight.decisions if d.action == "left_out"]
    assert left and all("--bench-profile=full times it" in d.note and "left out by the run's time plan" in d.note
                        for d in left)
    assert "four ranks" in actions["s::launch[ws4]"].note  # the reason it was costly
    assert actions["s::essential_launch"].action != "left_out" and actions["s::cheap[b]"].action != "left_out"
    # the costliest optional case went first
    assert actions["s::launch[ws4]"].action == "left_out"


def test_one_selection_one_plan_whatever_the_order():
    shuffled = CASES[:]
    random.Random(3).shuffle(shuffled)
    assert _plan(60.0) == _plan(60.0, shuffled)


PLANTED = """
import pytest
from bench.core.profiles import case

CASES = [case("ddp", model="tiny_bert", backend="gloo", world_size=2, device="cpu", bucket_cap_mb=n) for n in range(6)]

@pytest.mark.parametrize("c", CASES)
def test_launch(c, bench_row, benchmark):
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    bench_row["step_ms_p50"] = 1.0

@pytest.mark.bench_check("autograd_ops", check="gradcheck")
@pytest.mark.parametrize("op", ["planted_op"])
def test_correctness(op):
    assert True
"""


def test_a_run_over_its_budget_says_what_it_left_out_and_still_checks(bench_pytester):
    bench_pytester.makepyfile(test_planted=PLANTED)
    # six torchrun-sized cases (about 13 s each at world size 2) in a 40 s run: most are left out
    result = bench_pytester.runpytest_subprocess("--benchmark-only", "--bench-time-budget=40", "-s")
    data = json.loads((bench_pytester.path / "reports" / "latest" / "results.json").read_text())
    rows = {r["test"].split("::")[-1]: r for r in data["bench_rows"]}
    left = [r for r in rows.values() if r.get("plan") == "left_out"]
    ran = [r for r in rows.values() if r.get("plan") != "left_out" and r["suite"] == "ddp"]
    assert left and ran and sum(r["plan_estimate_s"] for r in ran) <= 40
    assert all(r["status"] == "skipped" and "--bench-time-budget 0 (or a larger budget) times it" in r["reason"]
               for r in left)
    assert rows["test_correctness[planted_op]"]["status"] == "ok"  # a plain check is never planned away
    assert data["bench_run"]["plan"]["budget_s"] == 40
    assert result.ret == pytest.ExitCode.OK
    summary = (bench_pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert f"{len(left)} left out by the run's time plan" in summary
    assert "## Where the time went" in summary and "Slowest" in summary
    assert "bench: where the time went" in result.stdout.str()


def test_compare_does_not_decide_timings_measured_under_different_plans(tmp_path, capsys):
    import copy
    from pathlib import Path

    from bench.__main__ import main

    real = json.loads((Path(__file__).parent / "data" / "results_smoke.json").read_text())
    case = "suites/test_graph_modes.py::test_graph_mode[custom_ops_mlp-eager-cpu-fp32-train]"
    new = copy.deepcopy(real)
    for b in new["benchmarks"]:
        if b["fullname"] == case:
            b["stats"]["data"] = [v * 6 for v in b["stats"]["data"]]
    next(r for r in new["bench_rows"] if r["test"] == case)["plan"] = "min_rounds"
    paths = []
    for name, data in (("a", real), ("b", new)):
        paths.append(str(tmp_path / f"{name}.json"))
        Path(paths[-1]).write_text(json.dumps(data))
    assert main(["compare", *paths, "--format", "json"]) == 0  # a 6x slowdown, but not like with like
    out = json.loads(capsys.readouterr().out)
    timed = next(m for m in out["metrics"] if m["case"] == case and m["metric"] == "median_ms")
    assert timed["verdict"] == "unsure" and "different time plans" in timed["note"]
    assert any("different time plans" in w for w in out["warnings"])


def test_a_shared_cost_is_saved_only_when_every_case_sharing_it_is_left_out():
    parity = dict(shared="graph parity m cpu", shared_s=50.0)
    cases = [("g::m[eager]", "graph_modes", Cost(fixed_s=5.0, essential=True, **parity)),
             ("g::m[trace]", "graph_modes", Cost(fixed_s=5.0, **parity)),
             ("g::n[trace]", "graph_modes", Cost(fixed_s=20.0))]
    plan = make_plan(cases, 1000.0, "--bench-profile=full")
    assert plan.total_s == pytest.approx(80.0)  # the parity once, by the first case that runs
    tight = make_plan(cases, 60.0, "--bench-profile=full")
    # leaving out m[trace] would save 5 s (m[eager] still pays the parity): n[trace] goes first
    assert tight.of("g::n[trace]").action == "left_out" and tight.of("g::m[trace]").action == "full"
    assert tight.total_s == pytest.approx(60.0)


def test_a_capped_run_gets_an_inductor_cache_of_its_own(monkeypatch):
    """Inductor's cache keys do not include the dispatch cap: a capped run that loaded an uncapped
    run's kernels aborted here, and the other way round segfaulted."""
    from bench.core.hardware import separate_inductor_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        monkeypatch.delenv(k, raising=False)
    assert separate_inductor_cache() is None  # no cap: the default cache
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    folder = separate_inductor_cache()
    assert folder and folder.endswith("-aten_cpu_capability=avx2")
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == folder
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/somewhere/mine")
    assert separate_inductor_cache() is None  # the user's own choice stands


def test_a_case_one_side_s_plan_left_out_is_not_a_correctness_change(tmp_path, capsys):
    import copy
    from pathlib import Path

    from bench.__main__ import main

    real = json.loads((Path(__file__).parent / "data" / "results_smoke.json").read_text())
    case = "suites/test_graph_modes.py::test_graph_mode[custom_ops_mlp-eager-cpu-fp32-train]"
    new = copy.deepcopy(real)
    row = next(r for r in new["bench_rows"] if r["test"] == case)
    row.update(status="skipped", plan="left_out", reason="left out by the run's time plan: about 9 s")
    new["benchmarks"] = [b for b in new["benchmarks"] if b["fullname"] != case]
    paths = []
    for name, data in (("a", real), ("b", new)):
        paths.append(str(tmp_path / f"{name}.json"))
        Path(paths[-1]).write_text(json.dumps(data))
    assert main(["compare", *paths, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not [c for c in out["correctness"] if c["case"] == case]
    assert any("left out by a side's time plan" in w for w in out["warnings"])
