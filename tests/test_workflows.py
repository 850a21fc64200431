"""The CI workflows parse and call commands that exist in this repository."""
import configparser
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def test_workflows_parse_and_have_triggers():
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert names == ["ci.yml", "nightly-gpu.yml"]
    nightly = yaml.safe_load((WORKFLOWS / "nightly-gpu.yml").read_text())
    triggers = nightly[True] if True in nightly else nightly["on"]  # YAML reads a bare `on` as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    assert "self-hosted" in nightly["jobs"]["gpu"]["runs-on"] and "gpu" in nightly["jobs"]["gpu"]["runs-on"]
    upload = [s for s in nightly["jobs"]["gpu"]["steps"] if "upload-artifact" in str(s.get("uses"))]
    assert upload and upload[0]["if"] == "always()"


def test_commands_exist():
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    envs = {s.split(":", 1)[1] for s in tox.sections() if s.startswith("testenv:")}
    for wf in WORKFLOWS.glob("*.yml"):
        for run in _runs(yaml.safe_load(wf.read_text())):
            for env in re.findall(r"tox -e (\w+)", run):
                assert env in envs, f"{wf.name}: tox env {env} not in tox.ini"
            for script in re.findall(r"bash (\S+)", run):
                assert (ROOT / script).is_file(), f"{wf.name}: {script} missing"
            for sub in re.findall(r"python3? -m bench (\w+)", run):
                assert sub in ("report", "compare", "ab", "history", "peak"), \
                    f"{wf.name}: python -m bench {sub} does not exist"
    assert "pytest" in tox["testenv:gpu"]["commands"] and "--bench-profile=full" in tox["testenv:gpu"]["commands"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")][0].strip()
    assert command in readme


def _nightly_layout(tmp_path, new_rows_edit=None):
    """The folders as the nightly job sees them: download-artifact keeps the uploaded paths."""
    import json
    import shutil

    data = json.loads((ROOT / "tests" / "data" / "results_smoke.json").read_text())
    (tmp_path / "baseline" / "reports" / "latest").mkdir(parents=True)
    (tmp_path / "baseline" / "reports" / "latest" / "results.json").write_text(json.dumps(data))
    data["bench_run"]["run_id"] = "29991231-000000-smoke-1"  # tonight's run is newer than the baseline
    (tmp_path / "baseline" / "compare.md").write_text("last night's comparison\n")
    if new_rows_edit:
        new_rows_edit(data)
    (tmp_path / "reports" / "latest").mkdir(parents=True)
    (tmp_path / "reports" / "latest" / "results.json").write_text(json.dumps(data))
    shutil.copy(ROOT / "scripts" / "nightly_compare.sh", tmp_path / "nightly_compare.sh")


def _run_nightly_compare(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, BENCH_PYTHON=sys.executable, PYTHONPATH=str(ROOT),
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    return subprocess.run(["bash", "nightly_compare.sh", "reports/latest/results.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_nightly_finds_the_baseline_where_download_artifact_puts_it(tmp_path):
    nightly = yaml.safe_load((WORKFLOWS / "nightly-gpu.yml").read_text())
    steps = nightly["jobs"]["gpu"]["steps"]
    download = [s for s in steps if "download-artifact" in str(s.get("uses"))][0]
    assert download["with"]["path"].rstrip("/") == "baseline"
    assert any("scripts/nightly_compare.sh" in s.get("run", "") for s in steps)
    _nightly_layout(tmp_path)
    out = _run_nightly_compare(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    md = (tmp_path / "compare.md").read_text()
    assert "no regression" in md and "nothing to compare" not in md
    assert "Compared with the previous night" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "compare.html").is_file()


def test_nightly_fails_on_a_status_regression(tmp_path):
    def break_one(data):
        row = next(r for r in data["bench_rows"] if r["status"] == "ok")
        row.update(status="mismatch", reason="compiled graph differs from eager by 0.3")

    _nightly_layout(tmp_path, break_one)
    out = _run_nightly_compare(tmp_path)
    assert out.returncode == 1
    assert "regressed" in (tmp_path / "compare.md").read_text()


def test_readme_layout_table_matches_the_tree():
    """Every path in the README's "Where things are" table exists, and every module and
    package under bench/ is named there (itself or through its package)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Where things are")[1].split("\n## ")[0]
    paths = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), path
    for module in (ROOT / "bench").rglob("*.py"):
        rel = module.relative_to(ROOT).as_posix()
        if module.name == "__init__.py" or module.parent.name == "__pycache__":
            continue
        assert rel in paths or f"{module.parent.relative_to(ROOT).as_posix()}/" in paths or \
            rel in ("bench/__main__.py",), f"{rel} is not in the README's layout table"


def test_every_bench_module_is_small_and_says_what_it_holds():
    import ast

    for module in (ROOT / "bench").rglob("*.py"):
        text = module.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{module}: no module docstring"
        assert text.count("\n") <= 320, f"{module}: {text.count(chr(10))} lines (keep modules near 300)"


def test_nightly_history_keeps_the_nights_and_fails_on_a_recent_step(tmp_path):
    """The nightly history script adds tonight's results to history/ (the bench-history
    artifact) and fails when a change toward worse starts in the last 3 nights."""
    import copy
    import json
    import os
    import shutil
    import subprocess
    import sys

    data = json.loads((ROOT / "tests" / "data" / "results_smoke.json").read_text())
    case = "suites/test_graph_modes.py::test_graph_mode[custom_ops_mlp-eager-cpu-fp32-train]"
    (tmp_path / "history").mkdir()
    nights = []
    for i in range(9):
        run = copy.deepcopy(data)
        run["bench_run"]["run_id"] = f"202611{i + 1:02d}-020000-smoke-{i}"
        for b in run["benchmarks"]:
            if b["fullname"] == case and i >= 7:
                b["stats"]["data"] = [v * 1.6 for v in b["stats"]["data"]]
        nights.append(run)
    for run in nights[:-1]:
        (tmp_path / "history" / f"{run['bench_run']['run_id']}.json").write_text(json.dumps(run))
    (tmp_path / "reports" / "latest").mkdir(parents=True)
    (tmp_path / "reports" / "latest" / "results.json").write_text(json.dumps(nights[-1]))
    shutil.copy(ROOT / "scripts" / "nightly_history.sh", tmp_path)
    env = dict(os.environ, BENCH_PYTHON=sys.executable, PYTHONPATH=str(ROOT),
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    out = subprocess.run(["bash", "nightly_history.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert len(list((tmp_path / "history").glob("*.json"))) == 9  # tonight joined the history
    assert case in (tmp_path / "history.md").read_text() and (tmp_path / "history.html").is_file()
    assert "## History (9 nights)" in (tmp_path / "summary.md").read_text()


def test_nightly_takes_its_baseline_from_the_same_runner(tmp_path):
    """Last night ran on another machine: not a baseline; an older night of this machine in
    the rolling history is."""
    import json

    _nightly_layout(tmp_path)
    other = tmp_path / "baseline" / "reports" / "latest" / "results.json"
    data = json.loads(other.read_text())
    data["machine_info"]["bench"]["cpu_model"] = "another runner's CPU"
    data["bench_run"]["run_id"] = "29991230-000000-smoke-1"
    other.write_text(json.dumps(data))
    out = _run_nightly_compare(tmp_path)
    assert out.returncode == 0 and "nothing to compare" in (tmp_path / "compare.md").read_text()
    (tmp_path / "history").mkdir()
    same = json.loads((ROOT / "tests" / "data" / "results_smoke.json").read_text())
    (tmp_path / "history" / "older.json").write_text(json.dumps(same))
    out = _run_nightly_compare(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "history/older.json" in (tmp_path / "summary.md").read_text()


def test_no_test_file_name_is_used_twice():
    """tests/ and suites/ have no __init__.py: pytest imports each file by its base name, so a
    tests/test_x.py beside a suites/test_x.py is a collection error that stops the whole run."""
    names = [p.name for folder in ("tests", "suites") for p in (ROOT / folder).glob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
