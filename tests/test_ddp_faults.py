"""A rank that raises or hangs fails within a bounded time, with that rank's error in the
message, and leaves no process behind."""
import os
import time

import pytest

from bench.distributed import scenario as runs

pytestmark = pytest.mark.distributed


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_crashing_rank_is_reported_with_its_error(tmp_path, monkeypatch):
    """... and torchrun's logs stay in the launch's working folder: none under the temporary
    directory, where its agent would otherwise leave a torchelastic_* folder a launch."""
    work, temp = tmp_path / "work", tmp_path / "temp"
    work.mkdir(), temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # read afresh by the torchrun agent, a child process
    t0 = time.perf_counter()
    launched = runs.launch_run("mlp", 2, "cpu", extra=["--fault", "raise:1", "--steps", "2"], timeout_s=90,
                               workdir=work)
    assert not launched.ok
    assert "injected failure on rank 1" in launched.reason, launched.reason + launched.log_tail
    assert time.perf_counter() - t0 < 90
    assert _processes_mentioning(str(work)) == []
    assert not list(temp.glob("torchelastic_*")), "torchrun left its log folder in the temporary directory"


def test_hanging_rank_is_killed_within_the_bound(tmp_path):
    bound = 20  # a rank reaches 'init' in ~5 s here (torchrun + importing torch), 4x that under load
    t0 = time.perf_counter()
    launched = runs.launch_run("mlp", 2, "cpu", extra=["--fault", "hang:1", "--timeout-s", "600"], timeout_s=bound,
                        workdir=tmp_path)
    elapsed = time.perf_counter() - t0
    assert not launched.ok
    assert f"timed out after {bound} s" in launched.reason
    assert "rank1 at 'init'" in launched.reason, launched.reason
    assert elapsed < bound + 15  # the bound plus the group's SIGTERM/SIGKILL grace
    time.sleep(0.5)
    assert _processes_mentioning(str(tmp_path)) == []
