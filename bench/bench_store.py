"""Store benchmark: hakube's replicated store against a 3-member etcd, side by side.

Run: ``python -m bench.bench_store`` (``--help`` for knobs). Progress goes to stderr; the report
goes to stdout as Markdown (machine, versions, settings, then the tables), ready to paste into
docs/benchmarks.md. The scenarios are described in ``bench.store_scenarios``.

Four systems, in one run with the same client: "hakube" (this checkout, with the mutual TLS
its masters run with: the API, and Raft too where the checkout has it), "hakube-plain" (the
last release without TLS, see ``bench.hakube_system``), "etcd-tls" (etcd with mutual TLS on
client and peer URLs) and "etcd" (plaintext). The load table compares each hakube with the etcd
of the same transport security; the cost-of-TLS table shows each product's TLS/plain ratios and
checks the target: TLS costs hakube no more than it costs etcd in relative terms (hakube's
TLS/plain ops/s ≥ etcd's − 0.1), and hakube's failover with TLS stays within 2 s.

"fsync" means a system makes a write durable on disk before acknowledging it (etcd's default);
"no fsync" is etcd with --unsafe-no-fsync, which is the durability pysyncobj offers (an mmap
journal never fsynced: writes survive a process crash, not a power loss). The fair comparison
for hakube is the "no fsync" rows; both are reported.

Extension point: a system is anything implementing ``bench.target.System``, registered in
``SYSTEMS`` below. A system left out with ``--systems`` shows "—" in its columns and in every
ratio that involves it: the report's shape never depends on which systems ran.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import signal
from collections.abc import Callable, Sequence

from bench import machine
from bench.etcd_cluster import EtcdSystem
from bench.hakube_batch import HakubeBatchSystem
from bench.hakube_system import PLAIN_REV, HakubePlainSystem, HakubeSystem
from bench.report import (
    TlsPair,
    format_failover_table,
    format_load_table,
    format_tls_cost_table,
    format_tls_failover_table,
)
from bench.store_scenarios import (
    FailoverRows,
    LoadRows,
    Settings,
    failover_scenario,
    log,
    run_system,
    scenario,
)
from bench.target import System

SYSTEMS: dict[str, Callable[[argparse.Namespace], System]] = {
    "hakube": lambda args: HakubeSystem(data_root=args.data_root),
    "hakube-batch": lambda args: HakubeBatchSystem(data_root=args.data_root),
    "hakube-plain": lambda args: HakubePlainSystem(
        data_root=args.data_root, tree=args.plain_tree, rev=args.plain_rev
    ),
    "etcd-tls": lambda args: EtcdSystem(data_root=args.data_root, tls=True),
    "etcd": lambda args: EtcdSystem(data_root=args.data_root),
}
"""Systems the benchmark can run, by report name; each factory gets the parsed arguments.
A system with a ``close()`` method has it called once the run is over, however it ends."""

REPORT_SYSTEMS = ("hakube", "hakube-batch", "hakube-plain", "etcd-tls", "etcd")
"""Columns of the report, whether or not each system ran."""

BASELINE = "etcd"
"""The peer every other system is expressed as a multiple of."""

RATIOS = (("hakube", "etcd-tls"), ("hakube-plain", "etcd"), ("hakube-batch", "etcd-tls"))
"""The load table's ratios: each hakube against the etcd with the same transport security
(hakube-batch: hakube's client coalescing writes into Batch calls, against etcd's stubs)."""

TLS_PAIRS = (
    TlsPair("hakube", tls="hakube", plain="hakube-plain"),
    TlsPair("etcd", tls="etcd-tls", plain="etcd"),
)
"""(subject, peer) of the cost-of-TLS table."""

FAILOVER_LIMIT_S = 2.0
"""Target: hakube's median recovery from a leader kill, with TLS."""


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def preamble(systems: Sequence[System], settings: Settings, started: str) -> str:
    """Where and how the figures were measured, as a Markdown list."""
    facts = {"date": f"{started} to {_utc_now()}"}
    facts.update(machine.describe())
    facts.update({s.name: s.version for s in systems})
    facts["settings"] = (
        f"{settings.rounds} rounds of {settings.duration_s:g} s per scenario (median kept), "
        f"{settings.warmup_s:g} s warm-up, {settings.value_size}-byte values, client talks to "
        f"the {settings.via}, rounds with > {settings.max_foreign_cpu:g} foreign cores "
        f"discarded"
    )
    return "\n".join(f"- {k}: {v}" for k, v in facts.items())


async def run(systems: Sequence[System], settings: Settings) -> str:
    """Run every system through every scenario; return the report."""
    started = _utc_now()
    load_rows: LoadRows = {
        scenario(k, f): {} for f in settings.fsync_modes for k in settings.concurrency
    }
    failover_rows: FailoverRows = {}
    if settings.failover_repeats:
        failover_rows = {failover_scenario(f): {} for f in settings.fsync_modes}
    for system in systems:
        await run_system(system, settings, load_rows, failover_rows)
    return report(systems, settings, started, load_rows, failover_rows)


def report(
    systems: Sequence[System],
    settings: Settings,
    started: str,
    load_rows: LoadRows,
    failover_rows: FailoverRows,
) -> str:
    """The Markdown report of one run's figures."""
    subject, peer = TLS_PAIRS
    parts = [
        preamble(systems, settings, started),
        format_load_table(load_rows, REPORT_SYSTEMS, BASELINE, RATIOS),
    ]
    if failover_rows:
        parts.append(format_failover_table(failover_rows, REPORT_SYSTEMS))
    parts.append(
        f"Cost of TLS: {subject.label} and {peer.label}, each with TLS against "
        f"itself without; target: {subject.label}'s TLS/plain ops/s at least "
        f"{peer.label}'s − 0.1"
    )
    parts.append(format_tls_cost_table(load_rows, subject, peer))
    if failover_rows:
        parts.append(
            format_tls_failover_table(failover_rows, subject.tls, peer.tls, FAILOVER_LIMIT_S)
        )
    return "\n\n".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, from: {', '.join(SYSTEMS)} (default: all)",
    )
    p.add_argument("--concurrency", default="1,16,64,256", help="requests in flight, per run")
    p.add_argument("--modes", default="fsync,nofsync", help="durability settings to run")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per round")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario (median)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--value-size", type=int, default=128, help="bytes per value")
    p.add_argument(
        "--via",
        choices=("leader", "follower"),
        default="leader",
        help="member the load client talks to",
    )
    p.add_argument("--failover-repeats", type=int, default=5, help="leader kills; 0 to skip")
    p.add_argument(
        "--max-foreign-cpu",
        type=float,
        default=0.25,
        help="cores other processes may use during a round before it is redone",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds to wait for a quiet machine before each round",
    )
    p.add_argument(
        "--plain-tree",
        default=None,
        help="an existing checkout of the release without TLS for hakube-plain "
        "(default: a temporary git worktree of --plain-rev, removed at the end)",
    )
    p.add_argument(
        "--plain-rev",
        default=PLAIN_REV,
        help=f"commit of the release without TLS (default: {PLAIN_REV})",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="where data dirs go (default: the system temp dir); fsync cost depends on this disk",
    )
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    modes = {"fsync": True, "nofsync": False}
    try:
        fsync_modes = tuple(modes[m.strip()] for m in args.modes.split(","))
    except KeyError as e:
        raise SystemExit(f"--modes: unknown mode {e}; use fsync, nofsync or both") from e
    return Settings(
        concurrency=tuple(int(k) for k in args.concurrency.split(",")),
        fsync_modes=fsync_modes,
        duration_s=args.duration,
        rounds=args.rounds,
        warmup_s=args.warmup,
        value_size=args.value_size,
        via=args.via,
        failover_repeats=args.failover_repeats,
        max_foreign_cpu=args.max_foreign_cpu,
        quiet_wait_s=args.quiet_wait,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise SystemExit(f"--systems: unknown {unknown}; available: {list(SYSTEMS)}")
    settings = settings_from(args)
    systems: list[System] = []
    try:
        for n in names:
            systems.append(SYSTEMS[n](args))
        for s in systems:
            log(f"{s.name} {s.version}, fsync modes {tuple(s.fsync_modes)}")
        print(asyncio.run(_run_stoppable(systems, settings)))
    except asyncio.CancelledError:
        raise SystemExit("stopped by SIGTERM; clusters torn down") from None
    finally:
        for s in systems:
            close = getattr(s, "close", None)
            if close is not None:
                close()


async def _run_stoppable(systems: Sequence[System], settings: Settings) -> str:
    """``run``, cancelled cleanly by SIGTERM as by Ctrl-C, so clusters are always torn down."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(systems, settings)


if __name__ == "__main__":
    main()
