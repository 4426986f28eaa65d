"""The machine a benchmark runs on, and how much of its CPU other work took meanwhile.

Why: the benchmark's systems are CPU-bound on 2 cores (3 members plus the client), and the
machine is shared with other work (test suites of other branches, CI). A figure measured while
something else burned a core is off by ±50%, so every round records the CPU that processes
outside this benchmark used ("foreign" CPU), and the runner can wait for a quiet machine first.

"Ours" is this process and all its descendants (the cluster members it started), so any system
that runs its members as child processes is accounted for without telling us its pids. Linux
only: everything comes from /proc.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all processes have been busy since boot, summed over cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of one process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its ")" is fixed.
    rest = raw[raw.rindex(")") + 2:].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK


def our_cpu_s() -> float:
    """CPU seconds used so far by this process and every live descendant of it."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(p))}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


@dataclass(frozen=True)
class CpuSample:
    """CPU use over one interval, in cores (CPU seconds per wall second)."""

    ours: float
    foreign: float


class CpuMeter:
    """Measures our and foreign CPU between ``start()`` and ``stop()``.

    Foreign CPU is the machine's busy time less ours; a descendant that exits during the interval
    takes its CPU time with it and shows up as foreign, so meter only intervals without kills.
    """

    def __init__(self) -> None:
        self._t0 = self._machine0 = self._ours0 = 0.0

    def start(self) -> None:
        self._t0, self._machine0, self._ours0 = time.monotonic(), machine_busy_s(), our_cpu_s()

    def stop(self) -> CpuSample:
        wall = max(time.monotonic() - self._t0, 1e-9)
        ours = our_cpu_s() - self._ours0
        foreign = max(machine_busy_s() - self._machine0 - ours, 0.0)
        return CpuSample(ours=ours / wall, foreign=foreign / wall)


def foreign_cpu(interval_s: float = 1.0) -> float:
    """Cores that processes other than ours kept busy over the next ``interval_s`` (blocking)."""
    meter = CpuMeter()
    meter.start()
    time.sleep(interval_s)
    return meter.stop().foreign


def describe() -> dict[str, str]:
    """What docs/benchmarks.md records about the machine."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": model,
        "memory": f"{mem_kib / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
