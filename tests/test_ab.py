"""``python -m bench ab`` on a tiny suite with two small fake environments (wrapper scripts
around this interpreter): order, progress, crash handling, outputs and exit codes."""
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.experiments.ab import balanced_order

TINY = """
import os, time
import pytest
from bench.core.profiles import case

@pytest.mark.parametrize("c", [case("devices", model="tiny", device="cpu", dtype="fp32", phase="inference",
                                    batch_size=1)])
def test_tiny(c, bench_row, benchmark):
    delay = float(os.environ.get("TINY_DELAY_S", "0.002"))
    if os.environ.get("TINY_BROKEN"):
        bench_row.check(False, "the new environment computes something else")
    benchmark.pedantic(time.sleep, args=(delay,), rounds=5, iterations=1)
"""


def _wrapper(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["bench.pytest_plugin"]\n')
    (tmp_path / "test_tiny.py").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    root = str(Path(__file__).resolve().parents[1])
    env = f'PYTHONPATH="{root}${{PYTHONPATH:+:$PYTHONPATH}}"'
    return tmp_path, lambda name, extra="": _wrapper(tmp_path, name, f'{env} {extra} exec {sys.executable} "$@"')


def test_balanced_order():
    assert balanced_order(3) == ["a", "b", "b", "a", "a", "b"]


def test_ab_runs_alternately_reports_progress_and_writes_the_verdict(project, capsys):
    folder, env = project
    a, b = env("py_a"), env("py_b")
    out = folder / "ab"
    code = main(["ab", "--a", a, "--b", b, "--runs", "2", "--out", str(out), "--format", "json", "--",
                 "test_tiny.py", "--benchmark-only"])
    captured = capsys.readouterr()
    assert code == 0
    manifest = json.loads((out / "ab.json").read_text())
    assert [r["side"] for r in manifest["runs"]] == ["a", "b", "b", "a"]
    assert all(r["problem"] is None and Path(r["results"]).is_file() for r in manifest["runs"])
    for i in range(1, 5):
        assert f"run {i} of 4" in captured.err
    assert "left" in captured.err and "elapsed" in captured.err
    verdict = json.loads(captured.out)
    assert verdict["verdict"] == "no_regression" and len(verdict["runs"]["base"]) == 2
    for name in ("compare.json", "compare.md", "compare.html"):
        assert (out / name).stat().st_size > 0


def test_each_problem_of_the_new_environment_is_named_and_the_experiment_goes_on(project, capsys):
    """One experiment, three problems of the new environment (one experiment, not three, keeps
    the test command short), each named on its own: a case that computes something else (a
    status regression), a run perturbed by another process taking the CPU (measured: machine
    busy time minus the run's own CPU time) and a run that crashed (exit 1 all the same)."""
    folder, env = project
    a = env("py_a")
    counter = folder / "count"
    # B's first pytest run shares the machine with a hog on every core (so the share is
    # machine-independent); its second dies (exit 3); its interpreter check is fine
    b = _wrapper(folder, "py_b", f'''if [ "$2" = pytest ]; then
  n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
  if [ $n = 1 ]; then
    for core in $(seq {os.cpu_count() or 1}); do
      {sys.executable} -c "import time; t=time.time()
while time.time()-t < 4: pass" &
    done
  fi
  if [ $n = 2 ]; then echo "Fatal Python error: Segmentation fault" >&2; exit 3; fi
fi
TINY_BROKEN=1 PYTHONPATH="{Path(__file__).resolve().parents[1]}" exec {sys.executable} "$@"''')
    out = folder / "ab"
    code = main(["ab", "--a", a, "--b", b, "--runs", "2", "--out", str(out), "--rerun-busy", "0", "--",
                 "test_tiny.py", "--benchmark-only"])
    captured = capsys.readouterr()
    assert code == 1
    assert "regressed" in captured.out  # the status regression
    runs = json.loads((out / "ab.json").read_text())["runs"]
    assert len(runs) == 4
    crashed = [r for r in runs if r["problem"]]
    assert len(crashed) == 1 and crashed[0]["side"] == "b" and "exited 3" in crashed[0]["problem"]
    assert "CRASHED" in captured.err
    assert "crashed: run" in (out / "compare.md").read_text()
    verdict = json.loads((out / "compare.json").read_text())
    assert verdict["verdict"] == "regression" and verdict["crashes"][0]["side"] == "new"
    assert "1 crashed new run" in verdict_headline(out)
    busy = next(r for r in runs if r["side"] == "b" and not r["problem"])
    assert busy["foreign_cpu_share"] > 0.10, runs
    assert "other processes took" in captured.err
    assert "other processes took" in (out / "compare.md").read_text()


def verdict_headline(out: Path) -> str:
    return (out / "compare.md").read_text().splitlines()[0]


def test_an_environment_without_the_project_is_a_one_line_error(project, capsys):
    folder, env = project
    bare = _wrapper(folder, "py_bare", 'echo "ModuleNotFoundError: No module named \'bench\'" >&2; exit 1')
    code = main(["ab", "--a", env("py_a"), "--b", bare, "--runs", "1", "--out", str(folder / "ab")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "--b" in err and "lacks the project" in err and "No module named 'bench'" in err
    assert not (folder / "ab").exists()  # nothing ran


def test_a_busy_run_is_run_again_in_its_place(tmp_path, monkeypatch):
    """Run 2 (B) is busy on its first attempt and quiet on its second: the second is judged,
    the first is kept in ab.json and named; a run still busy after --rerun-busy attempts
    stands, with its warning. Crashed runs are not rerun (a crash may be the upgrade's)."""
    from bench.experiments import ab

    shares = {(1, 0): 0.01, (2, 0): 0.40, (2, 1): 0.02, (3, 0): 0.30, (3, 1): 0.35, (4, 0): 0.50}
    calls = []

    def fake_run(index, side, python, args, out, timeout_s, attempt=0):
        calls.append((index, attempt))
        problem = "pytest exited 3" if index == 4 else None
        return ab.AbRun(index, side, python, 0, 1.0, None if problem else f"r{index}.{attempt}", problem,
                        shares[(index, attempt)], attempt)

    monkeypatch.setattr(ab, "_run_one", fake_run)
    monkeypatch.setattr(ab, "check_environment", lambda python, label: "2.13.0")
    monkeypatch.setattr(ab, "wait_for_quiet", lambda: 0.0)
    lines = []
    done, replaced = ab.run_experiment("pa", "pb", 2, tmp_path, log=lines.append)
    assert calls == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (4, 0)]
    assert [r.results for r in done] == ["r1.0", "r2.1", "r3.1", None]  # judged: the last attempt of each
    assert [(r.index, r.attempt) for r in replaced] == [(2, 0), (3, 0)]
    assert any("took 40% of the CPU; running it again" in line for line in lines)
    saved = json.loads((tmp_path / "ab.json").read_text())
    assert [r["attempt"] for r in saved["replaced_busy_runs"]] == [0, 0]
    done, replaced = ab.run_experiment("pa", "pb", 2, tmp_path / "never", log=lines.append, rerun_busy=0)
    assert not replaced and done[1].busy
    with pytest.raises(ab.ResultsError, match="--rerun-busy -1"):
        ab.run_experiment("pa", "pb", 2, tmp_path, rerun_busy=-1)


def test_a_rerun_waits_for_the_machine_to_be_quiet():
    from bench.experiments import ab

    cores = __import__("os").cpu_count() or 1
    readings = iter([0.0, 1.6 * cores, 1.6 * cores, 1.7 * cores])  # 80 % busy, then 5 %
    slept = []
    share = ab.wait_for_quiet(max_s=10, window_s=2.0, sleep=slept.append, busy_s=lambda: next(readings))
    assert slept == [2.0, 2.0] and share == pytest.approx(0.05)
    always = iter(range(0, 1000, 2 * cores))  # 100 % busy: gives up after max_s
    share = ab.wait_for_quiet(max_s=6, window_s=2.0, sleep=lambda s: None, busy_s=lambda: next(always))
    assert share == pytest.approx(1.0)


def test_until_decided_adds_blocks_while_unsure_and_stops_at_its_limits(tmp_path, monkeypatch):
    """Blocks are added one at a time while the judge says metrics are unsure, never past
    --max-runs a side; the looks split alpha."""
    from bench.experiments import ab

    calls = []

    def fake_run(index, side, python, args, out, timeout_s, attempt=0):
        calls.append(side)
        return ab.AbRun(index, side, python, 0, 0.01, f"r{index}", None, 0.0, attempt)

    monkeypatch.setattr(ab, "_run_one", fake_run)
    monkeypatch.setattr(ab, "check_environment", lambda python, label: "2.13.0")
    looks = []
    plan = ab.Plan(2, until_decided=True, max_runs=4)
    assert plan.looks == 3 and plan.alpha_per_look(0.06) == pytest.approx(0.02)
    done, _ = ab.run_experiment("pa", "pb", plan, tmp_path, log=lambda t: None,
                                judge=lambda runs, reach: looks.append(len(runs)) or True)
    assert len(done) == 8 and looks == [4, 6] and calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    looks.clear()
    done, _ = ab.run_experiment("pa", "pb", ab.Plan(2, until_decided=True, max_runs=4), tmp_path / "2",
                                log=lambda t: None, judge=lambda runs, reach: looks.append(len(runs)) or len(runs) < 6)
    assert len(done) == 6 and looks == [4, 6]  # decided after the first added block
    lines = []
    done, _ = ab.run_experiment("pa", "pb", ab.Plan(2, until_decided=True, max_runs=10, budget_s=1e-6),
                                tmp_path / "3", log=lines.append, judge=lambda runs, reach: True)
    assert len(done) == 4 and any("budget" in line for line in lines)
    with pytest.raises(ab.ResultsError, match="--max-runs 1"):
        ab.Plan(2, until_decided=True, max_runs=1)
    with pytest.raises(ab.ResultsError, match="only apply with --until-decided"):
        ab.Plan(2, max_runs=5)


def test_plan_prints_the_detectable_change_from_an_earlier_aa(tmp_path):
    from bench.experiments import plan

    aa = tmp_path / "compare.json"
    aa.write_text(json.dumps({"metrics": [{"case": "t[a]", "metric": "median_ms", "sd_log": 0.05},
                                          {"case": "t[b]", "metric": "median_ms", "sd_log": 0.20},
                                          {"case": "t[c]", "metric": "peak_rss_mib", "sd_log": None}]}))
    text = plan.plan_text(plan.noise_from(str(aa)), 5, 0.05)
    # (1.96 + 0.84) * sd * sqrt(2 / 5): 0.05 -> 1.093x, 0.20 -> 1.426x; median of the two 1.26x
    assert "1.26x" in text and "1.43x" in text and "t[b]" in text
    with pytest.raises(plan.ResultsError, match="--noise"):
        plan.noise_from(str(tmp_path / "missing.json"))


def test_a_terminated_ab_takes_its_run_with_it(project):
    """SIGTERM to ab (a cancelled CI job) kills the pytest run it started, which lives in its
    own process group, instead of leaving it running."""
    import signal
    import subprocess
    import time

    folder, env = project
    a, b = env("py_a", "TINY_DELAY_S=30"), env("py_b", "TINY_DELAY_S=30")
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-m", "bench", "ab", "--a", a, "--b", b, "--runs", "1", "--out",
                             str(folder / "ab"), "--", "test_tiny.py", "--benchmark-only"], cwd=folder,
                            env={**os.environ, "PYTHONPATH": root}, stderr=subprocess.PIPE, text=True)
    pattern = "bench-report-dir=" + str(folder / "ab" / "runs" / "01-a")
    deadline = time.time() + 120
    while time.time() < deadline and not subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout:
        time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout, "the run did not start"
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 2
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert not left, f"run processes left behind: {left}"
