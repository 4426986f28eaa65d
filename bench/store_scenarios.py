"""The store benchmark's scenarios, run against any ``bench.target.System``.

Per durability setting the system supports, one fresh cluster runs:

- puts of distinct keys with 1 (sequential latency), 16, 64 and 256 requests in flight from this
  one asyncio client process: a warm-up, then several measured rounds of which the report keeps
  the median, because 3 members and the client share 2 cores and single rounds vary a lot;
- failover: a client on a follower writes continuously, the leader is SIGKILLed, and we time the
  gap until its next acknowledged write (see ``bench.failover``), several times.

Rounds are metered with ``bench.machine.CpuMeter``: a round during which other processes on the
machine used more than ``max_foreign_cpu`` cores is discarded and run again (within a bound),
and each round first waits (within a bound) for the machine to be quiet.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.failover import FailoverSettings, measure_failover
from bench.loadgen import LoadResult, Op, run_load
from bench.machine import CpuMeter, CpuSample, foreign_cpu
from bench.target import System, Target

LoadRows = dict[str, dict[str, LoadResult]]
FailoverRows = dict[str, dict[str, list[float]]]


@dataclass(frozen=True)
class Settings:
    concurrency: Sequence[int] = (1, 16, 64, 256)
    """Requests in flight, one scenario each."""
    fsync_modes: Sequence[bool] = (True, False)
    """Durability settings to run (True = fsync before acknowledging)."""
    duration_s: float = 5.0
    """Seconds of measured load per round."""
    rounds: int = 3
    """Measured rounds per scenario; the report keeps the round with the median throughput
    (whole, so its latencies stay consistent with its throughput)."""
    max_ops: int = 200_000
    """Upper bound on operations per round, whatever the duration."""
    warmup_s: float = 1.0
    """Seconds of unmeasured load before each scenario (connection set-up, allocator, caches)."""
    value_size: int = 128
    """Bytes per value: a small object; keys are ~30 bytes."""
    via: str = "leader"
    """Member the load client talks to: "leader" (best case) or "follower" (pays forwarding)."""
    failover_repeats: int = 5
    """Leader kills per durability setting; 0 skips the failover scenario."""
    max_foreign_cpu: float = 0.25
    """Cores other processes may use during a round before it is discarded: a quarter of one
    of the 2 cores already moves the figures by more than round-to-round noise."""
    quiet_wait_s: float = 30.0
    """Seconds to wait for a quiet machine before a round; then measure anyway and say so."""

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency {self.concurrency} needs levels of at least 1")
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds} must be at least 1 to measure anything")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError(
                f"duration {self.duration_s}s must be > 0 and warm-up {self.warmup_s}s ≥ 0"
            )
        if self.via not in ("leader", "follower"):
            raise ValueError(f"via={self.via!r} must be 'leader' or 'follower'")


def scenario(concurrency: int, fsync: bool) -> str:
    flight = "sequential" if concurrency == 1 else f"{concurrency} in flight"
    return f"put, {flight}, {'fsync' if fsync else 'no fsync'}"


def failover_scenario(fsync: bool) -> str:
    return f"SIGKILL leader, client on follower, {'fsync' if fsync else 'no fsync'}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(result: LoadResult, cpu: CpuSample) -> str:
    errors = f", errors {result.error_kinds}" if result.errors else ""
    client = result.client_cpu_s / result.elapsed_s if result.elapsed_s else 0.0
    return (
        f"{result.ops_per_s:,.0f} ops/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, max {result.max_ms:.2f} ms; cores: client "
        f"{client:.2f}, servers {max(cpu.ours - client, 0):.2f}, foreign {cpu.foreign:.2f}"
        f"{errors}"
    )


def median_round(rounds: Sequence[LoadResult]) -> LoadResult:
    """The round with the median throughput (the lower middle one for an even count)."""
    ranked = sorted(rounds, key=lambda r: r.ops_per_s)
    return ranked[(len(ranked) - 1) // 2]


def puts(target: Target, prefix: str, value: bytes) -> Op:
    """An operation writing ``value`` under a distinct key per index: no key is written twice,
    so every put is a create of a new key (what an API server mostly does)."""

    async def put(i: int) -> None:
        await target.put(f"{prefix}{i:09d}", value)

    return put


async def wait_quiet(settings: Settings) -> float:
    """Wait until other processes use at most ``max_foreign_cpu`` cores; return the last sample."""
    deadline = time.monotonic() + settings.quiet_wait_s
    while True:
        foreign = await asyncio.to_thread(foreign_cpu, 1.0)
        if foreign <= settings.max_foreign_cpu or time.monotonic() > deadline:
            return foreign


async def measure_scenario(
    target: Target, *, label: str, prefix: str, concurrency: int, value: bytes, settings: Settings
) -> LoadResult:
    """Warm up, then measured rounds until ``rounds`` quiet ones (at most 3× as many tries)."""
    warm = await run_load(
        puts(target, f"{prefix}warmup/", value),
        concurrency=concurrency,
        duration_s=settings.warmup_s,
        max_errors=1000,
    )
    if warm.errors:
        log(f"{label}: warm-up errors {warm.error_kinds}")
    quiet: list[LoadResult] = []
    noisy: list[LoadResult] = []
    for n in range(3 * settings.rounds):
        if len(quiet) == settings.rounds:
            break
        before = await wait_quiet(settings)
        meter = CpuMeter()
        meter.start()
        result = await run_load(
            puts(target, f"{prefix}{n}/", value),
            concurrency=concurrency,
            duration_s=settings.duration_s,
            count=settings.max_ops,
            max_errors=1000,
        )
        cpu = meter.stop()
        ok = cpu.foreign <= settings.max_foreign_cpu
        (quiet if ok else noisy).append(result)
        log(
            f"{label}, round {n + 1}: {describe(result, cpu)}"
            + ("" if ok else f" -- discarded, machine busy (foreign {before:.2f} before)")
        )
    if len(quiet) < settings.rounds:
        log(f"{label}: only {len(quiet)} quiet rounds; the figure may be low")
    return median_round(quiet or noisy)


async def run_system(
    system: System, settings: Settings, load_rows: LoadRows, failover_rows: FailoverRows
) -> None:
    """Fill this system's cells of the report; one fresh cluster per durability setting."""
    value = b"v" * settings.value_size
    for fsync in settings.fsync_modes:
        if fsync not in system.fsync_modes:
            log(f"{system.name}: cannot run with fsync={fsync}; leaving those rows empty")
            continue
        mode = "fsync" if fsync else "nofsync"
        async with system.cluster(fsync=fsync) as cluster:
            leader = await cluster.leader()
            member = (
                leader
                if settings.via == "leader"
                else next(m for m in cluster.members if m != leader)
            )
            target = cluster.target(member)
            await target.setup()
            try:
                for k in settings.concurrency:
                    label = f"{system.name}: {scenario(k, fsync)} via {settings.via} {member}"
                    load_rows[scenario(k, fsync)][system.name] = await measure_scenario(
                        target,
                        label=label,
                        prefix=f"/bench/{mode}/{k}/",
                        concurrency=k,
                        value=value,
                        settings=settings,
                    )
            finally:
                await target.close()
            if settings.failover_repeats:
                gaps = await measure_failover(
                    cluster,
                    repeats=settings.failover_repeats,
                    key_prefix=f"/bench/{mode}/failover/",
                    settings=FailoverSettings(value=value),
                    before_each=lambda: wait_quiet(settings),
                )
                failover_rows[failover_scenario(fsync)][system.name] = gaps
                log(
                    f"{system.name}: {failover_scenario(fsync)}: "
                    + ", ".join(f"{g:.2f}s" for g in gaps)
                )
