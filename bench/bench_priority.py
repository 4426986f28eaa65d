"""Priority and fairness benchmark: node Lease renewals under a write storm vs unloaded, same run.

Run: ``python -m bench.bench_priority`` (``--help`` for knobs; about a minute). Progress on
stderr, a Markdown report on stdout. ``--micro`` only times the flow-control machinery itself
(classification, a seat taken and given back, a queued request) in this process: seconds.

The cluster run, on three fresh master processes (default flags: the seats this machine gets):

1. ``nodes`` simulated nodes (default 50) renew their Leases every ``interval`` seconds, each
   with its own node identity, as agents do (hakube.testing.overload.NodeRenewers); a quiet
   user writes one small ConfigMap at a time. Both talk to master 1. For ``phase`` seconds:
   the **unloaded** figures.
2. Then one user storms master 1 with ``inflight`` outstanding Updates of ``size``-byte
   ConfigMaps from a child process, never backing off, for another ``phase`` seconds; the same
   renewals and quiet writes go on: the **storm** figures.
3. The report: renewal latency p50/p99/max and the longest gap between two renewals of a node,
   failed renewals, the quiet writer's p50/p99, the storm's answers by status (OK,
   RESOURCE_EXHAUSTED), and the foreign CPU the run saw (a quiet machine shows ~0).

``--no-flow-control`` runs the same with ``--max-requests-inflight 0`` (priority and fairness
off), to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import timeit

from bench import machine
from hakube.apiserver.authz.attributes import Attributes
from hakube.apiserver.flowcontrol import FlowControl, PriorityLevel, Settings
from hakube.apiserver.flowcontrol.fairqueue import QueueSet
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.testing import overload
from hakube.testing.cluster import LocalCluster


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def micro(number: int = 200_000) -> list[tuple[str, float]]:
    """Microseconds per operation of the flow-control hot paths."""
    flow = FlowControl(Settings())
    node = Identity(names.node_user("n1"), (names.NODES_GROUP,))
    attrs = Attributes("update", "coordination.k8s.io", "leases", namespace="kube-node-lease")
    out = []
    t = timeit.timeit(lambda: flow.classify(node, "update", "leases"), number=number)
    out.append(("classify (cached)", t / number * 1e6))

    async def fast() -> float:
        start = time.perf_counter()
        for _ in range(number):
            level = await flow.admit(node, attrs)
            flow.done(level)
        return time.perf_counter() - start

    t = asyncio.run(fast())
    out.append(("admit + done, a seat free (incl. classify)", t / number * 1e6))

    qs = QueueSet(PriorityLevel("bench", shares=1, queues=64, hand_size=6, queue_length=1000), 1)
    queued = 10_000

    async def slow() -> float:
        qs.try_seat()
        start = time.perf_counter()
        futs = [qs.enqueue(f"flow-{i % 50}") for i in range(queued)]
        for _ in futs:
            qs.release()  # hands the seat to the next queued request, round robin
        assert all(f.done() for f in futs)
        return time.perf_counter() - start

    t = asyncio.run(slow())
    out.append(("a queued request: enqueue, then dispatch (future resolved)", t / queued * 1e6))
    return out


def run_cluster(args: argparse.Namespace) -> str:
    extra = ["--history-size", "1000"]
    if args.no_flow_control:
        extra += ["--max-requests-inflight", "0"]
    nodes = [f"bench-node-{i}" for i in range(args.nodes)]
    with tempfile.TemporaryDirectory(prefix="bench-priority-") as tmp:
        cluster = LocalCluster(tmp, 3, extra_args=extra)
        with cluster:
            admin = cluster.client()
            endpoint = cluster.masters[0].api
            storm = overload.storm_and_quiet(
                cluster,
                admin,
                endpoint,
                inflight=args.inflight,
                size=args.size,
                seconds=args.phase + 1,
            )
            renewers = overload.NodeRenewers(cluster, endpoint, nodes, interval=args.interval)
            renewers.register(admin)
            prober = overload.Prober(cluster, endpoint, "quiet", "quiet")
            meter = machine.CpuMeter()
            try:
                renewers.start()
                prober.measure(5)
                renewers.reset()
                log(f"unloaded: {args.phase:g}s")
                meter.start()
                quiet_unloaded = prober.measure_for(args.phase)
                unloaded = renewers.snapshot()
                renewers.reset()
                log(f"storm: {args.inflight} in flight, {args.size} bytes, {args.phase:g}s")
                storm.start()
                time.sleep(1.0)
                quiet_storm = prober.measure_for(args.phase - 1)
                counts = storm.result(timeout=args.phase + 60)
                loaded = renewers.snapshot()
                cpu = meter.stop()
            finally:
                storm.stop()
                renewers.stop()
                prober.close()
                admin.close()
    rows = []
    for label, (lat, failed, gaps), quiet in (
        ("unloaded", unloaded, quiet_unloaded),
        ("write storm", loaded, quiet_storm),
    ):
        pct = overload.percentile
        rows.append(
            f"| {label} | {len(lat)} | {pct(lat, 0.5) * 1000:.1f} | {pct(lat, 0.99) * 1000:.1f} "
            f"| {max(lat, default=0) * 1000:.1f} | {max(gaps.values(), default=0):.2f} "
            f"| {len(failed)} | {pct(quiet, 0.5) * 1000:.1f} | {pct(quiet, 0.99) * 1000:.1f} |"
        )
    mode = "off (--max-requests-inflight 0)" if args.no_flow_control else "on (defaults)"
    return "\n".join(
        [
            f"## Priority and fairness: {args.nodes} nodes renewing every {args.interval:g}s, "
            f"flow control {mode}",
            "",
            "| phase | renewals | p50 ms | p99 ms | max ms | longest gap s | failed "
            "| quiet writer p50 ms | quiet p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Storm answers: {dict(sorted(counts.items()))}; "
            f"CPU: ours {cpu.ours:.2f} cores, foreign {cpu.foreign:.2f} cores; "
            f"machine: {machine.describe()}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--micro", action="store_true", help="only the in-process micro-benchmark")
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between renewals")
    p.add_argument("--inflight", type=int, default=256, help="the storm's outstanding writes")
    p.add_argument("--size", type=int, default=128 * 1024, help="bytes per storm write")
    p.add_argument("--phase", type=float, default=20.0, help="seconds per phase")
    p.add_argument("--no-flow-control", action="store_true")
    args = p.parse_args(argv)
    lines = ["| operation | µs |", "|---|---|"]
    lines += [f"| {what} | {us:.2f} |" for what, us in micro()]
    print("## Flow control, per request\n\n" + "\n".join(lines) + "\n")
    if not args.micro:
        print(run_cluster(args))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda a: log(f"thread {a.thread}: {a.exc_value}")
    raise SystemExit(main())
