"""Store benchmark: hakube's replicated store against a 3-member etcd, side by side.

Run: ``python -m bench.bench_store`` (``--help`` for knobs). Progress goes to stderr; the tables
go to stdout as Markdown, ready for docs/benchmarks.md.

Scenarios, per system and per durability setting the system supports:

- puts of distinct keys with 1 (sequential latency), 16, 64 and 256 requests in flight from one
  asyncio client process, for a fixed duration each, after a short warm-up, in several rounds of
  which the report keeps the median (3 members and the client share 2 cores here, so single
  runs vary by ±30%);
- failover: a client on a follower writes continuously, the leader is SIGKILLed, and we time the
  gap until its next acknowledged write (see bench.failover), several times.

"fsync" means the system makes a write durable on disk before acknowledging it (etcd's default);
"no fsync" is etcd with --unsafe-no-fsync, which is the durability pysyncobj offers (an mmap
journal never fsynced: writes survive a process crash, not a power loss). The fair comparison
for hakube is the "no fsync" rows; both are reported.

Extension point: a system is anything implementing ``bench.target.System``. hakube joins by
adding an entry to ``SYSTEMS`` below that starts its three local masters and returns targets
speaking its gRPC API; the report already has a hakube column and hakube/etcd ratios, shown as
"—" until then.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.etcd_cluster import EtcdSystem
from bench.failover import FailoverSettings, measure_failover
from bench.loadgen import LoadResult, Op, run_load
from bench.report import format_failover_table, format_load_table
from bench.target import System, Target

SYSTEMS: dict[str, Callable[[argparse.Namespace], System]] = {
    "etcd": lambda args: EtcdSystem(data_root=args.data_root),
    # "hakube": lambda args: HakubeSystem(...),  -- 3 local masters behind hakube's gRPC API
}
"""Systems the benchmark can run, by report name; each factory gets the parsed arguments."""

REPORT_SYSTEMS = ("hakube", "etcd")
"""Columns of the report, whether or not each system ran."""

BASELINE = "etcd"
"""The peer every other system is expressed as a multiple of."""


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
    """Upper bound on operations per scenario, whatever the duration."""
    warmup_s: float = 1.0
    """Seconds of unmeasured load before each scenario (connections, caches, JIT-less Python
    still has allocator and gRPC warm-up)."""
    value_size: int = 128
    """Bytes per value: a small object; keys are ~30 bytes."""
    via: str = "leader"
    """Member the load client talks to: "leader" (best case) or "follower" (pays forwarding)."""
    failover_repeats: int = 5
    """Leader kills per durability setting; 0 skips the failover scenario."""

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency {self.concurrency} needs levels of at least 1")
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds} must be at least 1 to measure anything")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError(f"duration {self.duration_s}s must be > 0 and warm-up "
                             f"{self.warmup_s}s ≥ 0")
        if self.via not in ("leader", "follower"):
            raise ValueError(f"via={self.via!r} must be 'leader' or 'follower'")


def scenario(concurrency: int, fsync: bool) -> str:
    flight = "sequential" if concurrency == 1 else f"{concurrency} in flight"
    return f"put, {flight}, {'fsync' if fsync else 'no fsync'}"


def failover_scenario(fsync: bool) -> str:
    return f"SIGKILL leader, client on follower, {'fsync' if fsync else 'no fsync'}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(result: LoadResult) -> str:
    errors = f", errors {result.error_kinds}" if result.errors else ""
    cpu = result.client_cpu_s / result.elapsed_s if result.elapsed_s else 0.0
    return (f"{result.ops_per_s:,.0f} ops/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms, max {result.max_ms:.2f} ms, "
            f"client CPU {cpu:.0%} of a core{errors}")


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


async def run_system(system: System, settings: Settings,
                     load_rows: dict[str, dict[str, LoadResult]],
                     failover_rows: dict[str, dict[str, list[float]]]) -> None:
    """Fill this system's cells of the report; one fresh cluster per durability setting."""
    value = b"v" * settings.value_size
    for fsync in settings.fsync_modes:
        if fsync not in system.fsync_modes:
            log(f"{system.name}: cannot run with fsync={fsync}; leaving those rows empty")
            continue
        mode = "fsync" if fsync else "nofsync"
        async with system.cluster(fsync=fsync) as cluster:
            leader = await cluster.leader()
            member = leader if settings.via == "leader" else next(
                m for m in cluster.members if m != leader)
            target = cluster.target(member)
            await target.setup()
            try:
                for k in settings.concurrency:
                    warm = await run_load(puts(target, f"/bench/{mode}/{k}/warmup/", value),
                                          concurrency=k, duration_s=settings.warmup_s,
                                          max_errors=1000)
                    if warm.errors:
                        log(f"{system.name}: warm-up errors {warm.error_kinds}")
                    rounds = []
                    for n in range(settings.rounds):
                        result = await run_load(
                            puts(target, f"/bench/{mode}/{k}/{n}/", value), concurrency=k,
                            duration_s=settings.duration_s, count=settings.max_ops,
                            max_errors=1000)
                        rounds.append(result)
                        log(f"{system.name}: {scenario(k, fsync)} via {settings.via} {member}, "
                            f"round {n + 1}: {describe(result)}")
                    load_rows[scenario(k, fsync)][system.name] = median_round(rounds)
            finally:
                await target.close()
            if settings.failover_repeats:
                gaps = await measure_failover(
                    cluster, repeats=settings.failover_repeats,
                    key_prefix=f"/bench/{mode}/failover/", settings=FailoverSettings(value=value))
                failover_rows[failover_scenario(fsync)][system.name] = gaps
                log(f"{system.name}: {failover_scenario(fsync)}: "
                    + ", ".join(f"{g:.2f}s" for g in gaps))


async def run(systems: Sequence[System], settings: Settings) -> str:
    """Run every system through every scenario; return the report."""
    load_rows: dict[str, dict[str, LoadResult]] = {
        scenario(k, f): {} for f in settings.fsync_modes for k in settings.concurrency}
    failover_rows: dict[str, dict[str, list[float]]] = {}
    if settings.failover_repeats:
        failover_rows = {failover_scenario(f): {} for f in settings.fsync_modes}
    for system in systems:
        await run_system(system, settings, load_rows, failover_rows)
    parts = [format_load_table(load_rows, REPORT_SYSTEMS, BASELINE)]
    if failover_rows:
        parts.append(format_failover_table(failover_rows, REPORT_SYSTEMS))
    return "\n\n".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_store", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated, from: {', '.join(SYSTEMS)} (default: all)")
    p.add_argument("--concurrency", default="1,16,64,256", help="requests in flight, per run")
    p.add_argument("--modes", default="fsync,nofsync", help="durability settings to run")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per round")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario (median)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--value-size", type=int, default=128, help="bytes per value")
    p.add_argument("--via", choices=("leader", "follower"), default="leader",
                   help="member the load client talks to")
    p.add_argument("--failover-repeats", type=int, default=5, help="leader kills; 0 to skip")
    p.add_argument("--data-root", default=None,
                   help="where data dirs go (default: the system temp dir); fsync cost depends "
                        "on this disk")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    modes = {"fsync": True, "nofsync": False}
    try:
        fsync_modes = tuple(modes[m.strip()] for m in args.modes.split(","))
    except KeyError as e:
        raise SystemExit(f"--modes: unknown mode {e}; use fsync, nofsync or both") from e
    return Settings(
        concurrency=tuple(int(k) for k in args.concurrency.split(",")),
        fsync_modes=fsync_modes, duration_s=args.duration, rounds=args.rounds,
        warmup_s=args.warmup,
        value_size=args.value_size, via=args.via, failover_repeats=args.failover_repeats)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise SystemExit(f"--systems: unknown {unknown}; available: {list(SYSTEMS)}")
    systems = [SYSTEMS[n](args) for n in names]
    for s in systems:
        if isinstance(s, EtcdSystem):
            log(f"etcd {s.version}, fsync modes {s.fsync_modes}")
    print(asyncio.run(run(systems, settings_from(args))))


if __name__ == "__main__":
    main()
