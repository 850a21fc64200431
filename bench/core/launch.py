"""Launch a worker module under torch.distributed's elastic launcher (torchrun) and wait for
it with a blocking call and a hard time bound.

- A free port is picked by torchrun's ``--standalone`` rendezvous (no hard-coded port).
- The whole process group runs in its own session: on a timeout or failure it is killed
  as a group, so no rank outlives the call.
- The parent waits with ``Popen.wait(timeout)``, never a polling loop (a busy-waiting parent steals a core from
  the ranks it times).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


@dataclasses.dataclass
class LaunchResult:
    ok: bool
    reason: str | None
    result: dict | None
    wall_s: float
    log_tail: str


def threads_per_rank(requested: int = 0) -> int:
    """Torch threads for this rank: ``requested``, or this node's cores shared by its ranks
    (N processes x M threads > cores makes everything slower and noisier: here 2 ranks x 2
    threads took 258 ms a step against 139 ms with 1 thread each)."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    share = max(1, (os.cpu_count() or 1) // local_world)
    cap = int(os.environ.get("BENCH_THREADS") or 0)  # --bench-threads of the run that started this one
    n = requested or share
    return min(n, cap) if cap > 0 else n


def torchrun_command(module: str, args: list[str], nproc: int, nnodes: int = 1,
                     rdzv_endpoint: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--max-restarts=0"]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd += ["--standalone", "--nnodes=1"]
    else:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
                "--rdzv-id=bench"]
    return cmd + ["-m", module, *args]


def kill_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``; with no grace,
    SIGKILL at once."""
    steps = ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)) if grace_s > 0 else ((signal.SIGKILL, None),)
    for sig, wait_s in steps:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the group is gone: reap the leader
            proc.wait()
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _with_log_dir(cmd: list[str], log_dir: Path) -> list[str]:
    """Give torchrun a ``--log-dir`` beside the result file (the caller's working folder, which is
    removed): without one its agent makes a ``torchelastic_*`` folder under the temporary
    directory per launch and never removes it (torch/distributed/elastic/multiprocessing/api.py, DefaultLogsSpecs)."""
    if "torch.distributed.run" not in cmd or any(a.startswith(("--log-dir", "--log_dir")) for a in cmd):
        return cmd
    at = cmd.index("torch.distributed.run") + 1
    return [*cmd[:at], f"--log-dir={log_dir}", *cmd[at:]]


def _rank_error(log: str) -> str | None:
    """The failing rank and its error from torchrun's failure summary."""
    rank = re.search(r"rank\s*:\s*(\d+)", log)
    exc = re.findall(r"^\s*(\w+(?:Error|Exception)): (.+)$", log, flags=re.M)
    if exc:
        return (f"rank {rank.group(1)}: " if rank else "") + f"{exc[-1][0]}: {exc[-1][1][:300]}"
    return None


def launch(cmds: list[list[str]], out_file: Path, timeout_s: float, env: dict | None = None) -> LaunchResult:
    """Run one torchrun command per node (several only for a multi-node test on one host);
    read the merged result that global rank 0 writes to ``out_file``."""
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    logs = [out_file.with_name(f"{out_file.stem}.node{i}.log") for i in range(len(cmds))]
    t0 = time.perf_counter()
    procs = []
    for i, (cmd, log) in enumerate(zip(cmds, logs)):
        cmd = _with_log_dir(cmd, out_file.with_name(f"{out_file.stem}.node{i}.torchrun"))
        with open(log, "w") as fh:
            procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env,
                                          start_new_session=True))
    deadline = t0 + timeout_s
    timed_out = False
    try:
        for proc in procs:
            try:
                proc.wait(timeout=max(deadline - time.perf_counter(), 0.1))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
    finally:
        for proc in procs:  # a finished torchrun agent too: its ranks may outlive it
            kill_group(proc)
    wall_s = time.perf_counter() - t0
    log_text = "\n".join(log.read_text(errors="replace") for log in logs if log.exists())
    tail = log_text[-4000:]
    if timed_out:
        hung = _missing_ranks(out_file)
        return LaunchResult(False, f"timed out after {timeout_s:.0f} s (bound); "
                                   f"{hung or 'no rank reported'}; all ranks killed", None, wall_s, tail)
    codes = [p.returncode for p in procs]
    if any(codes):
        err = _rank_error(log_text) or (tail.strip().splitlines() or ["no output"])[-1]
        return LaunchResult(False, f"torchrun exited {codes}: {err}", None, wall_s, tail)
    if not out_file.exists():
        return LaunchResult(False, f"workers exited 0 but wrote no result ({out_file.name})", None, wall_s, tail)
    return LaunchResult(True, None, json.loads(out_file.read_text()), wall_s, tail)


def _missing_ranks(out_file: Path) -> str:
    """Which ranks had not finished, from the progress files each rank keeps."""
    progress = sorted(out_file.parent.glob(f"{out_file.stem}.rank*.progress"))
    stuck = [f"{p.stem.split('.')[-1]} at '{p.read_text().strip()}'" for p in progress
             if p.read_text().strip() != "done"]
    return ("unfinished: " + ", ".join(stuck)) if stuck else ""


def in_temp_dir(fn):
    """Give ``fn`` a temporary ``workdir`` (removed afterwards) unless the caller passes one:
    a benchmark leaves no files behind but its report."""

    @functools.wraps(fn)
    def wrapper(*args, workdir: Path | None = None, **kwargs):
        if workdir is not None:
            return fn(*args, workdir=Path(workdir), **kwargs)
        tmp = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
        try:
            return fn(*args, workdir=tmp, **kwargs)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return wrapper


def inject_fault(spec: str, rank: int) -> str | None:
    """The workers' test hook (``--fault KIND:RANK``, one implementation for DDP and sharded
    workers): on that rank, ``raise`` raises and ``hang`` never returns; any other kind aimed at
    this rank is returned for the worker to apply (the sharded worker's ``lose_grad``); None
    when the hook is off or aimed at another rank."""
    kind, _, target = spec.partition(":")
    if kind == "none" or int(target or -1) != rank:
        return None
    if kind == "raise":
        raise RuntimeError(f"injected failure on rank {rank}")
    if kind == "hang":
        while True:
            time.sleep(3600)
    return kind
