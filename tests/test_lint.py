"""The code passes its own lint configuration (``[tool.ruff]`` in pyproject.toml): line
length, pyflakes and import order, checked in the test command so CI runs it."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_passes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed here (pip install -e '.[test]' installs it)")
    out = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


@pytest.mark.parametrize("script", sorted(p.relative_to(ROOT).as_posix() for p in
                                          [*ROOT.glob("scripts/*.sh"), ROOT / ".ci" / "run"]))
def test_shell_scripts_parse(script):
    """The scripts that run where no test does (the GPU machine, CI) at least parse."""
    out = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
