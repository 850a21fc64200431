"""How busy the machine was while something of ours ran: CPU time the whole machine spent
(``/proc/stat``) minus the CPU time this process and its waited-for children spent
(``getrusage``), as a share of all cores over the wall time. Another job on a "quiet"
machine slows whatever is timed next to it; this names the cases it touched."""
from __future__ import annotations

import dataclasses
import os
import resource
import time

FOREIGN_LOAD_WARN = 0.10  # share of all cores other processes may take before a timing is suspect
MIN_WALL_S = 1.0          # shorter work is not judged: 100 ticks a second resolve no finer than ~1 %/s


def busy_s() -> float | None:
    """Seconds of CPU time the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _live_children_cpu_s() -> float:
    """CPU seconds of this process's live descendants (children, their children, ...: torchrun's
    ranks, Inductor's compile workers under their pool), each with the children it has waited for
    (cutime, cstime): getrusage counts a child of ours only once it has ended and been waited for,
    and never a grandchild while its parent lives. Without the grandchildren, a run's own compile
    workers would read as another job's load."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(pid)  # by ppid
        cpu[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime, stime, cutime, cstime
    total, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def own_cpu_s(children_only: bool = False) -> float:
    """CPU seconds of this process and its children (waited-for and running), or of the
    children only."""
    total = _live_children_cpu_s()
    for who in ((resource.RUSAGE_CHILDREN,) if children_only else (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def share(cpu_s: float, wall_s: float) -> float:
    """CPU seconds as a share of all this machine's cores over ``wall_s``."""
    return cpu_s / (wall_s * (os.cpu_count() or 1))


@dataclasses.dataclass
class LoadProbe:
    """Start it before the work, ``foreign_share()`` after: the share of the machine's CPU
    that other processes took meanwhile (None where /proc/stat cannot be read)."""

    children_only: bool = False
    t0: float = dataclasses.field(default_factory=time.perf_counter)
    busy0: float | None = dataclasses.field(default_factory=busy_s)
    own0: float = 0.0

    def __post_init__(self):
        self.own0 = own_cpu_s(self.children_only)

    def foreign_share(self) -> float | None:
        """None where /proc/stat cannot be read or the work was too short to judge: the
        kernel counts CPU time in ticks (10 ms at USER_HZ 100), so a call of a few ms would
        read as several times the machine's capacity."""
        wall, busy1 = time.perf_counter() - self.t0, busy_s()
        if self.busy0 is None or busy1 is None or wall < MIN_WALL_S:
            return None
        foreign = (busy1 - self.busy0) - (own_cpu_s(self.children_only) - self.own0)
        return min(1.0, max(0.0, share(foreign, wall)))
