"""One iperf3 measurement of a network path, taken so that paths can be compared on a VM.

Why this module: on this project's machines (2 vCPUs of a shared host) one iperf3 run of
a few seconds varies by ±15 % from the next one *on the same path* -- the host's other guests,
not the path. A comparison of two paths therefore needs many short runs of each, taken in
pairs close in time, and everything of ours that could add to the noise held still:

* **the cluster is paused** while a run lasts (``SIGSTOP`` to every process this benchmark
  started, ``SIGCONT`` right after): the masters, agents, proxies and containerds burn about
  0.6 cores at rest, at random moments, and none of them is on the data path -- routes,
  conntrack and the proxy's nft rules live in the kernel (the same reason traffic survives a
  killed proxy). Each pause lasts one run (seconds), well inside every lease;
* **iperf3's ends are pinned** (client on one CPU, server on the other), so every run of every
  path divides the work between the CPUs the same way;
* **CPU per GB counts the whole machine** (/proc/stat: user, system, irq and softirq of every
  CPU), so softirq work the kernel does on another task's time or in ``ksoftirqd`` is counted
  wherever it ran.

:func:`paired` then summarises the rounds: the cost of a path against a baseline over all
rounds (``1 - sum(path)/sum(baseline)``) with a 95 % interval from resampling whole rounds,
which says whether "≤ 10 %" was shown or only not excluded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from bench.machine import _ours, _processes

PORT = 5201
_TICK = os.sysconf("SC_CLK_TCK")


def busy_s() -> float:
    """CPU seconds every CPU has spent on anything but idle and iowait since boot."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (
            int(x) for x in f.readline().split()[1:8]
        )
    return (user + nice + system + irq + softirq) / _TICK


@contextmanager
def paused(enabled: bool = True) -> Iterator[list[int]]:
    """Every process this one started (and theirs) stopped while inside; resumed on the way
    out, also when the body raises. Processes started inside are not affected."""
    pids = [p for p in _ours(_processes()) if p != os.getpid()] if enabled else []
    stopped = []
    try:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except ProcessLookupError:
                pass
        yield stopped
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


@dataclass(frozen=True)
class Sample:
    bps: float
    """Bits per second received."""
    cpu_s_per_gb: float
    """CPU seconds the whole machine spent per GB received."""


def iperf(
    server: Sequence[str],
    client: Sequence[str],
    address: str,
    duration: float,
    *,
    pin: tuple[int, int] | None = (0, 1),
    pause: bool = True,
    streams: int = 1,
) -> Sample:
    """One iperf3 run from ``client`` to ``address`` (``server``/``client``: argv prefixes that
    enter the two ends' network namespaces); ``pin``: (client CPU, server CPU), or None;
    ``streams``: parallel TCP connections (``-P``)."""
    cpu_c, cpu_s = (["taskset", "-c", str(cpu)] for cpu in pin) if pin else ([], [])
    with paused(pause):
        srv = subprocess.Popen(
            [*server, *cpu_s, "iperf3", "-s", "-1", "-p", str(PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            out = ""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                before = busy_s()
                res = subprocess.run(
                    [*client, *cpu_c, "iperf3", "-c", address, "-p", str(PORT), "-J"]
                    + ["-t", str(duration), "-P", str(streams)],
                    capture_output=True,
                    text=True,
                    timeout=duration + 30,
                )
                used = busy_s() - before
                out = res.stdout
                try:
                    got = json.loads(out)["end"]["sum_received"]
                    return Sample(float(got["bits_per_second"]), used / (float(got["bytes"]) / 1e9))
                except (ValueError, KeyError, ZeroDivisionError):
                    time.sleep(0.1)  # the server was not listening yet
            raise RuntimeError(f"iperf3 to {address} failed: {out[-300:]}")
        finally:
            if srv.poll() is None:
                srv.kill()
            srv.wait(5)


def ratio_cost(base: Sequence[float], other: Sequence[float]) -> float:
    """``1 - sum(other)/sum(base)``: what ``other`` loses against ``base`` over all rounds."""
    return 1 - sum(other) / sum(base)


def paired(
    base: Sequence[float], other: Sequence[float], *, resamples: int = 2000, seed: int = 13
) -> dict[str, float]:
    """The cost of ``other`` against ``base`` (rounds paired by index): over all rounds, its
    95 % bootstrap interval (rounds resampled whole, a fixed seed so a report is
    reproducible), and the median of the per-round costs."""
    n = len(base)
    assert n == len(other) and n > 0, "paired rounds of equal, non-zero count"
    rng = random.Random(seed)
    boots = []
    for _ in range(resamples if n > 1 else 0):
        idx = [rng.randrange(n) for _ in range(n)]
        boots.append(ratio_cost([base[i] for i in idx], [other[i] for i in idx]))
    boots.sort()
    cost = ratio_cost(base, other)
    lo = boots[int(0.025 * len(boots))] if boots else cost
    hi = boots[int(0.975 * len(boots)) - 1] if boots else cost
    per_round = [1 - o / b for b, o in zip(base, other, strict=True)]
    return {
        "cost": round(cost, 4),
        "ci95_low": round(lo, 4),
        "ci95_high": round(hi, 4),
        "median_round_cost": round(statistics.median(per_round), 4),
        "rounds": n,
    }
