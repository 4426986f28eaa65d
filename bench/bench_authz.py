"""What authorization costs: API writes/s and sequential write latency with RBAC on and off.

Run: ``python -m bench.bench_authz`` (``--help`` for knobs) on a quiet machine. Two 3-master
clusters of this checkout, one after the other in the same run: ``--authorization-mode=RBAC``
(the default) and ``--authorization-mode=AlwaysAllow`` (authorization skipped). In both, the
load client is an ordinary user (``bench-writer``, a certificate from the cluster CA) whose
right to write comes from a RoleBinding to the ``edit`` ClusterRole in ``default``: the admin
would bypass RBAC through ``system:masters`` and measure nothing. A put is a ConfigMap Create
(the same write as bench.bench_store's hakube system), through the Raft leader.

Per mode, ``--rounds`` rounds of: writes/s with ``--concurrency`` in flight for ``--duration``
seconds, then ``--sequential`` writes one at a time (p50/p99); the report keeps each measure's
median round. The target (docs/shared design brief): RBAC costs at most 10 % of writes/s, and
the p50 rises by at most 10 %. Foreign CPU during each round is reported: a busy machine makes
the comparison meaningless.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import machine
from bench.hakube_system import HakubeCluster
from bench.loadgen import LoadResult, run_load
from bench.machine import CpuMeter
from bench.store_scenarios import log
from hakube.api.v1 import rbac_pb2
from hakube.pki import certs
from hakube.pki.tls import Credentials
from hakube.testing.cluster import LocalCluster

MODES = ("RBAC", "AlwaysAllow")
USER = "bench-writer"
TARGET_COST = 0.10
"""At most this fraction of writes/s (and of p50) may go to authorization."""


@dataclass
class ModeResult:
    mode: str
    throughput: list[LoadResult] = field(default_factory=list)
    sequential: list[LoadResult] = field(default_factory=list)
    foreign_cpu: list[float] = field(default_factory=list)

    def median(self, runs: Sequence[LoadResult], key: str) -> float:
        return statistics.median(getattr(r, key) for r in runs) if runs else float("nan")


def grant_writer(local: LocalCluster) -> Credentials:
    """A certificate for USER and a RoleBinding of ``edit`` in ``default`` for it."""
    with local.client() as admin:
        admin.create(
            rbac_pb2.RoleBinding(
                metadata={"name": "bench-writer", "namespace": "default"},
                role_ref={
                    "api_group": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
                subjects=[{"kind": "User", "name": USER, "api_group": "rbac.authorization.k8s.io"}],
            )
        )
    cert, key = local.pki.load_ca().issue_pair(certs.Identity(USER))
    return Credentials(local.credentials.ca, cert, key)


async def measure_mode(mode: str, args: argparse.Namespace) -> ModeResult:
    out = ModeResult(mode)
    extra = ["--authorization-mode", mode, "--fsync" if args.fsync else "--no-fsync"]
    with tempfile.TemporaryDirectory(prefix="hakube-bench-authz-", dir=args.data_root) as d:
        local = LocalCluster(d, 3, extra_args=extra)
        try:
            await asyncio.to_thread(local.start_all, 60.0)
            cluster = HakubeCluster(local, credentials=local.credentials)
            await cluster.wait_writable()
            creds = await asyncio.to_thread(grant_writer, local)
            writer = HakubeCluster(local, credentials=creds, name=f"hakube-{mode}")
            target = writer.target(await cluster.leader())
            await target.setup()
            keys = itertools.count()
            value = b"x" * args.value_size

            async def put(_i: int) -> None:
                await target.put(f"/bench/authz/{mode}/{next(keys)}", value)

            try:
                await run_load(put, concurrency=args.concurrency, duration_s=args.warmup)
                for r in range(args.rounds):
                    meter = CpuMeter()
                    meter.start()
                    load = await run_load(
                        put, concurrency=args.concurrency, duration_s=args.duration, max_errors=100
                    )
                    seq = await run_load(put, concurrency=1, count=args.sequential, max_errors=100)
                    cpu = meter.stop()
                    out.throughput.append(load)
                    out.sequential.append(seq)
                    out.foreign_cpu.append(cpu.foreign)
                    log(
                        f"{mode} round {r + 1}: {load.ops_per_s:,.0f} writes/s "
                        f"({load.errors} errors), sequential p50 {seq.p50_ms:.2f} ms "
                        f"p99 {seq.p99_ms:.2f} ms, foreign CPU {cpu.foreign:.2f} cores"
                    )
            finally:
                await target.close()
        finally:
            await asyncio.to_thread(local.__exit__, None, None, None)
    return out


def report(results: dict[str, ModeResult], args: argparse.Namespace) -> str:
    rbac, off = results["RBAC"], results["AlwaysAllow"]
    lines = ["# Cost of authorization (RBAC vs AlwaysAllow)", ""]
    lines += [f"- {k}: {v}" for k, v in machine.describe().items()]
    lines += [
        f"- settings: {args.concurrency} in flight for {args.duration:g} s, "
        f"{args.sequential} sequential writes, {args.rounds} rounds (medians), "
        f"{'fsync' if args.fsync else 'no fsync'}, client user {USER} (RoleBinding "
        "to edit)",
        "",
    ]
    lines += [
        "| mode | writes/s | sequential p50 ms | p99 ms | foreign CPU (max, cores) |",
        "|---|---|---|---|---|",
    ]
    for r in (rbac, off):
        lines.append(
            f"| {r.mode} | {r.median(r.throughput, 'ops_per_s'):,.0f} | "
            f"{r.median(r.sequential, 'p50_ms'):.2f} | "
            f"{r.median(r.sequential, 'p99_ms'):.2f} | "
            f"{max(r.foreign_cpu, default=float('nan')):.2f} |"
        )
    w_on, w_off = rbac.median(rbac.throughput, "ops_per_s"), off.median(off.throughput, "ops_per_s")
    p_on, p_off = rbac.median(rbac.sequential, "p50_ms"), off.median(off.sequential, "p50_ms")
    cost_w = 1 - w_on / w_off if w_off else float("nan")
    cost_p = p_on / p_off - 1 if p_off else float("nan")
    ok = cost_w <= TARGET_COST and cost_p <= TARGET_COST
    lines += [
        "",
        f"RBAC costs {cost_w:.1%} of writes/s and adds {cost_p:.1%} to the p50 "
        f"(target ≤ {TARGET_COST:.0%} each): {'met' if ok else 'NOT met'}.",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    results = {}
    for mode in args.modes.split(","):
        log(f"{mode}: starting a 3-master cluster")
        results[mode] = await measure_mode(mode, args)
    return report(results, args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_authz",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--concurrency", type=int, default=256, help="writes in flight")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per round")
    p.add_argument(
        "--sequential", type=int, default=2000, help="writes one at a time per round (latency)"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--value-size", type=int, default=128)
    p.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="masters sync their journal before acknowledging (the default; "
        "--no-fsync: pysyncobj's plain mmap journal)",
    )
    p.add_argument("--data-root", default=None, help="where the masters keep their data")
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help="modes in the order they run (the first cluster of a run starts cold: "
        "run both orders)",
    )
    args = p.parse_args(argv)
    print(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
