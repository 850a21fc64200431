"""The README's examples run as written: every ```python block is executed in a fresh interpreter
(within a minute, printing labelled output), every ```toml block is a known-failure manifest
the loader accepts, and every option and `python -m bench` command the ```bash blocks name exists.
The bash blocks themselves are not run: they are the main job (minutes) and the test command
(this very run)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(lang: str) -> list[tuple[str, int, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.S | re.M):
            out.append((doc.name, text[:m.start()].count("\n") + 1, m.group(1)))
    return out


PYTHON = _blocks("python")


@pytest.mark.parametrize("doc, line, code", PYTHON, ids=[f"{d}:{n}" for d, n, _ in PYTHON])
def test_python_block_runs_as_written(doc, line, code, tmp_path):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**__import__("os").environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, f"{doc}:{line} failed:\n{out.stderr[-3000:]}"
    printed = [s for s in out.stdout.splitlines() if s.strip()]
    assert printed, f"{doc}:{line} printed nothing"
    unlabelled = [s for s in printed if not re.match(r"\s*[A-Za-z_]", s)]
    assert not unlabelled, f"{doc}:{line} prints unlabelled lines: {unlabelled[:3]}"


def test_toml_blocks_are_manifests_the_loader_accepts(tmp_path):
    from bench.core import expectations

    blocks = _blocks("toml")
    assert blocks
    for doc, line, code in blocks:
        path = tmp_path / f"{line}.toml"
        path.write_text(code.replace('..."', '"'))  # the README shortens a long why with "..."
        assert expectations.load(path), f"{doc}:{line}"


def test_every_option_and_command_the_bash_blocks_name_exists():
    from bench.__main__ import main

    text = "\n".join(code for _, _, code in _blocks("bash"))
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120).stdout
    for option in sorted(set(re.findall(r"(--(?:bench|hf|benchmark)[a-z-]*)", text))):
        assert option in help_text, f"the README names {option}, which pytest does not know"
    for command in sorted(set(re.findall(r"python -m bench ([a-z]+)", text))):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0, command
