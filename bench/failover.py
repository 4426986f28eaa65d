"""How long writes are unavailable to a client after SIGKILL of the Raft leader.

The figure the targets table asks for is what a client sees: it is connected to a member that
survives (a follower), it keeps writing, the leader dies, and we measure from the moment just
before the SIGKILL to the first acknowledged write that was *issued after* the kill. Writes issued
before the kill do not count, even if acknowledged later: the old leader may have committed them
before it died, which says nothing about the new one.

The probe is open-loop (a new put every ``probe_interval_s``, each with its own timeout) rather
than one write at a time, because a sequential writer stuck in a request sent to the dead leader
would report its own timeout instead of the cluster's recovery. The interval is therefore the
resolution of the measurement.

After each repetition the killed member is restarted on its data and the cluster must agree on a
leader again, so repetitions are independent and leadership moves around the members.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.target import Cluster


@dataclass(frozen=True)
class FailoverSettings:
    probe_interval_s: float = 0.01
    """Seconds between probe writes: the resolution of the measurement."""
    op_timeout_s: float = 3.0
    """Seconds a probe write may take; longer than an election, so a write queued at the
    follower during the election can still succeed."""
    steady_s: float = 0.5
    """Seconds of probing before the kill, to show writes flow through the follower."""
    max_wait_s: float = 20.0
    """Give up after this many seconds without a write and report infinity."""
    value: bytes = b"v" * 128


async def measure_failover_once(
    cluster: Cluster, *, key_prefix: str, settings: FailoverSettings
) -> float:
    """Seconds from the leader's SIGKILL to the first acknowledged post-kill write."""
    leader = await cluster.leader()
    follower = next(m for m in cluster.members if m != leader)
    target = cluster.target(follower)
    await target.setup()
    clock = time.perf_counter
    t_kill = math.inf
    acked_before_kill = 0
    recovered_at: float | None = None
    recovered = asyncio.Event()
    probes: set[asyncio.Task[None]] = set()

    async def probe(i: int) -> None:
        nonlocal acked_before_kill, recovered_at
        issued = clock()
        try:
            async with asyncio.timeout(settings.op_timeout_s):
                await target.put(f"{key_prefix}{i:09d}", settings.value)
        except Exception:  # a failed probe is the unavailability we are measuring
            return
        if issued < t_kill:
            acked_before_kill += 1
        elif recovered_at is None:
            recovered_at = clock()
            recovered.set()

    async def prober() -> None:
        i = 0
        while not recovered.is_set():
            task = asyncio.create_task(probe(i))
            probes.add(task)
            task.add_done_callback(probes.discard)
            i += 1
            await asyncio.sleep(settings.probe_interval_s)

    prober_task = asyncio.create_task(prober())
    try:
        await asyncio.sleep(settings.steady_s)
        if acked_before_kill == 0:
            raise RuntimeError(f"no write through follower {follower} succeeded before the kill")
        t_kill = clock()
        await cluster.kill(leader)
        try:
            async with asyncio.timeout(settings.max_wait_s):
                await recovered.wait()
        except TimeoutError:
            pass
    finally:
        prober_task.cancel()
        for task in list(probes):
            task.cancel()
        await asyncio.gather(prober_task, *probes, return_exceptions=True)
        await target.close()
    await cluster.restart(leader)
    return math.inf if recovered_at is None else recovered_at - t_kill


async def measure_failover(
    cluster: Cluster,
    *,
    repeats: int,
    key_prefix: str,
    settings: FailoverSettings | None = None,
    before_each: Callable[[], Awaitable[object]] | None = None,
) -> list[float]:
    """``repeats`` independent failovers; seconds each (infinity when writes never came back).

    ``before_each`` is awaited before every repetition, e.g. to wait for a quiet machine.
    """
    settings = settings or FailoverSettings()
    gaps = []
    for n in range(repeats):
        if before_each is not None:
            await before_each()
        gaps.append(
            await measure_failover_once(cluster, key_prefix=f"{key_prefix}{n}/", settings=settings)
        )
    return gaps
