"""`python -m bench history` on a folder of runs built from a real results file: a planted
step, a status transition, a single noisy night, exit codes and the page."""
import copy
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report.history import change_points

REAL = Path(__file__).parent / "data" / "results_smoke.json"
STABLE = "suites/test_graph_modes.py::test_graph_mode[custom_ops_mlp-eager-cpu-fp32-train]"
OK_OP = "suites/test_autograd_ops.py::test_op_fwd_bwd[gelu_tanh-cpu-fp32]"
NOISY_NIGHT = "suites/test_graph_modes.py::test_graph_mode[mlp-eager-cpu-fp32-train]"


def _history(folder: Path, n: int = 12, step_at: int = 7, status_at: int = 9, noisy_night: int | None = 11):
    rng = random.Random(0)
    base = json.loads(REAL.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        run = copy.deepcopy(base)
        run_id = f"202611{i + 1:02d}-020000-smoke-{100 + i}"
        run["bench_run"]["run_id"] = run_id
        if i >= step_at:
            run["machine_info"]["bench"]["torch"] = "2.14.1"
        for b in run["benchmarks"]:
            factor = 1 + rng.gauss(0, 0.02)
            if b["fullname"] == STABLE and i >= step_at:
                factor *= 1.5
            if b["fullname"] == NOISY_NIGHT and i == noisy_night:
                factor *= 2.0
            b["stats"]["data"] = [v * factor for v in b["stats"]["data"]]
        if i >= status_at:
            row = next(r for r in run["bench_rows"] if r["test"] == OK_OP)
            row.update(status="mismatch", reason="max abs err 0.2 vs fp64")
        (folder / f"{run_id}.json").write_text(json.dumps(run))
    return folder


def test_history_finds_the_step_the_status_change_and_ignores_one_noisy_night(tmp_path, capsys):
    folder = _history(tmp_path / "history")
    assert main(["history", str(folder), "--format", "json", "--recent", "5"]) == 1
    out = json.loads(capsys.readouterr().out)
    (group,) = out["groups"]
    assert group["profile"] == "smoke" and len(group["runs"]) == 12
    changes = [c for c in group["changes"] if c["case"] == STABLE and c["metric"] == "median_ms"]
    assert len(changes) == 1
    change = changes[0]
    assert change["run_id"] == group["runs"][7] and change["direction"] == "worse"
    assert change["ratio"] == pytest.approx(1.5, rel=0.05)
    assert {"key": "torch", "base": "2.13.0+cpu", "new": "2.14.1"} in change["environment"]
    assert STABLE in change["repro"] and "2.14.1" in change["repro"]
    assert not [c for c in group["changes"] if c["case"] == NOISY_NIGHT]
    status = [s for s in group["status_changes"] if s["case"] == OK_OP]
    assert [(s["run_id"], s["from"], s["to"]) for s in status] == [(group["runs"][9], "ok", "mismatch")]
    # nothing toward worse in the last 2 runs: exit 0
    assert main(["history", str(folder), "--recent", "2"]) == 0


def test_history_reads_nightly_artifact_folders_and_writes_the_page(tmp_path, capsys):
    history = _history(tmp_path / "flat", n=8, step_at=4, status_at=99, noisy_night=None)
    nightly = tmp_path / "artifacts"
    for i, path in enumerate(sorted(history.glob("*.json"))):  # night-N/reports/latest/results.json
        target = nightly / f"night-{i}" / "reports" / "latest"
        target.mkdir(parents=True)
        shutil.copy(path, target / "results.json")
        (nightly / f"night-{i}" / "compare.json").write_text('{"verdict": "no_regression"}')
    page = tmp_path / "history.html"
    assert main(["history", str(nightly), "--html", str(page), "--recent", "4"]) == 1
    text = capsys.readouterr().out
    assert STABLE in text
    html = page.read_text()
    assert "data:image/png;base64" in html and "Overview" in html and "http" not in html.split("<body>")[1][:2000]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        shot = tmp_path / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        f"--screenshot={shot}", "--window-size=1400,900", page.as_uri()], capture_output=True,
                       timeout=120)
        assert shot.is_file() and shot.stat().st_size > 5000


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_history_unusable_input_is_exit_2(tmp_path, capsys, make):
    folder = tmp_path / "nothing"
    if make == "empty":
        folder.mkdir()
        (folder / "notes.json").write_text("[1, 2]")
    assert main(["history", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(folder) in err


def test_change_points_need_a_step_beyond_the_noise():
    rng = random.Random(1)
    flat = [1 + rng.gauss(0, 0.05) for _ in range(30)]
    assert change_points(flat) == []
    step = [v * (1.3 if i >= 15 else 1.0) for i, v in enumerate(flat)]
    (cp,) = change_points(step)
    assert abs(cp["index"] - 15) <= 1 and cp["ratio"] == pytest.approx(1.3, rel=0.1)


def test_a_step_hidden_in_rounds_that_spread_30_percent_is_found_from_run_medians():
    """The timing path: each point is a run's median, judged by the spread between runs, so
    a 25 % step in a case whose rounds spread 30 % inside every run is found where it began."""
    from bench.report.history import analyse
    from bench.report.runs import Run

    rng = random.Random(3)
    case = "suites/test_autograd_ops.py::test_op_fwd_bwd[x-cpu-fp32]"
    runs = []
    for i in range(12):
        med = 10 * (1 + rng.gauss(0, 0.02)) * (1.25 if i >= 6 else 1.0)
        rounds = [med * f for f in (0.7, 0.85, 1.0, 1.15, 1.3, 0.75, 1.25)]
        row = {"suite": "autograd_ops", "test": case, "status": "ok"}
        runs.append(Run(f"r{i}", f"20990101-0000{i:02d}-smoke", "smoke", True, {"cpu_model": "x"}, {case: row},
                        {case: rounds}))
    (group,) = analyse(runs)
    (change,) = [c for c in group.changes if c["metric"] == "fwd_bwd_median_ms"]
    assert change["run_id"] == runs[6].run_id and change["ratio"] == pytest.approx(1.25, rel=0.05)


def test_a_step_whose_new_level_flickers_is_found_where_it_began():
    from bench.report.history import level_steps

    (acc,) = level_steps([0.95] * 5 + [0.90, 0.95, 0.90, 0.91, 0.90], 0.02)
    assert acc["index"] == 5 and acc["after"] == pytest.approx(0.90)
    (count,) = level_steps([0, 0, 0, 1, 0, 1, 1, 1], 0.0)
    assert count["index"] == 3 and (count["before"], count["after"]) == (0, 1)
    assert level_steps([0, 0, 0, 1, 0, 0, 0, 0], 0.0) == []  # one flicker is not a level
    assert [c["index"] for c in level_steps([0] * 4 + [2] * 4 + [5] * 4, 0.0)] == [4, 8]


def test_a_count_that_starts_at_zero_is_followed(tmp_path, capsys):
    """Graph breaks 0 for six nights, 1 since: a change toward worse (counts are judged by an
    absolute step, not in logs)."""
    folder = _history(tmp_path / "h", n=10, step_at=99, status_at=99, noisy_night=None)
    for i, path in enumerate(sorted(folder.glob("*.json"))):
        run = json.loads(path.read_text())
        row = next(r for r in run["bench_rows"] if r["test"] == STABLE)
        row["graph_breaks"] = 1 if i >= 6 else 0
        path.write_text(json.dumps(run))
    assert main(["history", str(folder), "--format", "json", "--recent", "4"]) == 1
    (group,) = json.loads(capsys.readouterr().out)["groups"]
    (change,) = [c for c in group["changes"] if c["metric"] == "graph_breaks"]
    assert change["run_id"] == group["runs"][6] and change["direction"] == "worse" and change["ratio"] is None


def test_history_names_the_run_where_a_loss_curve_left_the_previous_ones(tmp_path, capsys):
    """Curves are deterministic on the CPU: the run whose curve moved is a finding (not a change
    toward worse), with the first step beyond the band and the versions that changed."""
    base = json.loads(REAL.read_text())
    case = base["bench_rows"][0]["test"]
    folder = tmp_path / "curves"
    folder.mkdir()
    for i in range(5):
        run = copy.deepcopy(base)
        run["bench_run"]["run_id"] = f"202611{i + 1:02d}-020000-smoke-{200 + i}"
        run["machine_info"]["bench"]["torch"] = "2.14.1" if i >= 3 else "2.13.0+cpu"
        row = next(r for r in run["bench_rows"] if r["test"] == case)
        row.update(status="ok", loss_curve=[2.0, 1.5, 1.2 if i < 3 else 1.21, 1.0], device="cpu")
        (folder / f"{i}.json").write_text(json.dumps(run))
    main(["history", str(folder), "--format", "json"])
    (group,) = json.loads(capsys.readouterr().out)["groups"]
    (moved,) = group["curve_changes"]
    assert moved["case"] == case and moved["run_id"] == group["runs"][3] and moved["first_step"] == 2
    assert "torch 2.13.0+cpu -> 2.14.1" in moved["environment"]
    main(["history", str(folder)])
    assert "Loss curves that left the previous run's" in capsys.readouterr().out
