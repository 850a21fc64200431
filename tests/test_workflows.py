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
                assert sub in ("report", "compare", "peak"), f"{wf.name}: python -m bench {sub} does not exist"
    assert "pytest" in tox["testenv:gpu"]["commands"] and "--bench-profile=full" in tox["testenv:gpu"]["commands"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")][0].strip()
    assert command in readme
