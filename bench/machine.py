"""The machine a benchmark runs on, and how much of its CPU other work took meanwhile.

Why: the benchmark's systems are CPU-bound on 2 cores (3 members plus the client), and the
machine is shared with other work (test suites of other branches, CI). A figure measured while
something else burned a core is off by ±50%, so every round records the CPU that processes
outside this benchmark used ("foreign" CPU), and the runner can wait for a quiet machine first.

"Ours" is this process and all its descendants (the cluster members it started), so any system
that runs its members as child processes is accounted for without telling us its pids; "foreign"
is every other user-space process. Linux only: everything comes from /proc.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")
KTHREADD = 2
"""Parent of every kernel thread on Linux."""


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of one process, None if it is gone. The CPU seconds
    include those of its children that have exited and been waited for, so work done by
    short-lived processes (a benchmark's iperf3 runs, an agent's ``nft`` calls) stays with
    the process that started them."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its ")" is fixed.
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(rest[1]), sum(int(x) for x in rest[11:15]) / _TICK


def _processes() -> dict[int, tuple[int, float]]:
    return {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(p))}


def _ours(processes: dict[int, tuple[int, float]]) -> set[int]:
    """This process and its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    ours, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo.extend(children.get(pid, ()))
    return ours


def task_busy_s() -> float:
    """CPU seconds all tasks have run since boot (user + nice + system in /proc/stat), which
    unlike per-process times still counts processes that have exited."""
    with open("/proc/stat") as f:
        user, nice, system = (int(x) for x in f.readline().split()[1:4])
    return (user + nice + system) / _TICK


@dataclass(frozen=True)
class CpuSample:
    """CPU use over one interval, in cores (CPU seconds per wall second)."""

    ours: float
    """This process and its descendants (the client and the members it started)."""
    foreign: float
    """Everything else that ran as a task, short-lived processes included. Kernel threads and
    interrupt time are left out: most of that work here (loopback softirqs, journal commits of
    our fsyncs) is done on our behalf."""


class CpuMeter:
    """Measures our and foreign CPU between ``start()`` and ``stop()``.

    Foreign = all task time (/proc/stat) − ours − kernel threads'. A process of ours that
    starts and ends within the interval counts as ours once its parent has waited for it; one
    that was running at ``start()`` and is killed meanwhile has its whole life counted again in
    its parent's children time: meter only intervals without kills.
    """

    def __init__(self) -> None:
        self._t0 = self._busy0 = 0.0
        self._cpu0: dict[int, float] = {}

    def start(self) -> None:
        self._t0, self._busy0 = time.monotonic(), task_busy_s()
        self._cpu0 = {pid: cpu for pid, (_, cpu) in _processes().items()}

    def stop(self) -> CpuSample:
        busy = task_busy_s() - self._busy0
        wall = max(time.monotonic() - self._t0, 1e-9)
        processes = _processes()
        ours = _ours(processes)

        def used(pid: int) -> float:
            return processes[pid][1] - self._cpu0.get(pid, 0.0)

        ours_s = sum(used(p) for p in ours)
        kernel_s = sum(used(p) for p, (ppid, _) in processes.items() if KTHREADD in (p, ppid))
        return CpuSample(ours=ours_s / wall, foreign=max(busy - ours_s - kernel_s, 0.0) / wall)


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
