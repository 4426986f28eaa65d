"""Scheduler throughput and latency on simulated nodes, and leader stability under that load.

Setup: a fresh 3-master LocalCluster; ``--nodes`` simulated nodes (Node objects whose leases are
renewed every ``--lease-renew`` seconds, as agents would); two ``hakube scheduler`` and two
``hakube controller-manager`` processes (active + standby each, default election timings).

Two phases, every binding persisted through Raft (the Bind call returns after the commit):

- **backlog**: ``--pods`` pods are created while no scheduler runs; then the schedulers start.
  Throughput = pods / (last binding seen - leader's first binding seen).
- **stream**: ``--stream-pods`` more pods are created by ``--writers`` client threads as fast as
  the API takes them while the scheduler runs. Latency per pod = create acknowledged -> binding
  seen on a watch (so it includes the queue, the decision, the Bind and the watch delivery);
  throughput = pods / (last binding - first create).
- **cpu per pod**: CPU seconds of all our processes (masters, schedulers, controller-managers,
  this process) over both phases, per bound pod: the figure to compare variants by when the
  machine is shared (the rates above are wall clock and depend on the other load).

Leader stability: the Lease objects' ``leaseTransitions`` and holders from the first leader's
start to the end of both phases (a flapping leader would show transitions > 0), and the terms
the schedulers logged. The components' logs are kept in $TMPDIR/schedbench-last-logs.

Run: ``python -m bench.scheduler_bench --nodes 100 --pods 1000``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.machine import CpuMeter, describe, foreign_cpu
from hakube.api.v1 import pod_pb2
from hakube.client import Client, errors
from hakube.local.cluster import free_ports
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

ZONES = ("z1", "z2", "z3")
DEFAULT_ELECTION = ["--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5"]


class Bindings:
    """Watches pods; notes when each was first seen bound."""

    def __init__(self, client: Client) -> None:
        self.at: dict[str, float] = {}
        self._w = client.pods.watch(namespace="bench")
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        for ev in self._w:
            p = ev.object
            if p is not None and p.spec.node_name and p.metadata.name not in self.at:
                self.at[p.metadata.name] = time.monotonic()

    def stop(self) -> None:
        self._w.stop()


def add_nodes(
    sim: FakeKubelet, count: int, writers: int, prefix: str, memory: str, pods: int
) -> float:
    """Register ``count`` nodes of 32 CPUs in three zones from ``writers`` threads; seconds."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(writers) as pool:
        list(
            pool.map(
                lambda i: sim.add_node(
                    f"{prefix}{i:05d}",
                    cpu="32",
                    memory=memory,
                    pods=pods,
                    labels={"topology.kubernetes.io/zone": ZONES[i % len(ZONES)]},
                ),
                range(count),
            )
        )
    return time.monotonic() - t0


def pod(name: str) -> pod_pb2.Pod:
    p = pod_pb2.Pod(metadata={"name": name, "namespace": "bench", "labels": {"app": "bench"}})
    c = p.spec.containers.add(name="c", image="busybox:1")
    c.resources.requests.update({"cpu": "100m", "memory": "64Mi"})
    return p


def lease(client: Client, name: str) -> tuple[str, int]:
    try:
        spec = client.leases.get(name, namespace="kube-system").spec
    except errors.NotFound:
        return "", 0
    return spec.holder_identity, spec.lease_transitions


def scrape(addr: str) -> dict[str, float]:
    """The active scheduler's own view: mean decision time, mean queue -> bound time."""
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    vals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("hakube_scheduler_") and " " in line and "{" not in line:
            name, value = line.rsplit(" ", 1)
            vals[name] = float(value)
    out = {}
    for h, key in (
        ("algorithm_duration_seconds", "sched_decision_mean_ms"),
        ("pod_scheduling_duration_seconds", "sched_queue_to_bound_mean_ms"),
    ):
        n = vals.get(f"hakube_scheduler_{h}_count", 0.0)
        if n:
            out[key] = vals[f"hakube_scheduler_{h}_sum"] / n * 1000
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods, "stream_pods": args.stream_pods}
    base = tempfile.mkdtemp(prefix="schedbench-")
    with LocalCluster(base, 3) as cluster, cluster.client(timeout=30) as client:
        client.namespaces.create(_ns("bench"))
        sim = FakeKubelet(client, renew_interval=args.lease_renew, run_pods=False)
        out["node_registration_s"] = add_nodes(sim, args.nodes, args.writers, "node-", "64Gi", 110)
        sim.start()
        binds = Bindings(client)
        t0 = time.monotonic()
        with ThreadPoolExecutor(args.writers) as pool:
            list(pool.map(lambda i: client.pods.create(pod(f"backlog-{i:05d}")), range(args.pods)))
        out["backlog_create_per_s"] = args.pods / (time.monotonic() - t0)
        logs = os.path.join(base, "components")
        os.makedirs(logs)
        sched_args = ["--bind-workers", str(args.bind_workers)]
        sched_args += ["--no-events"] if args.no_events else []
        with (
            ComponentProcs(
                "scheduler", cluster.endpoints(), logs, extra_args=sched_args, log_level="info"
            ) as sched,
            ComponentProcs(
                "controller-manager", cluster.endpoints(), logs, log_level="info"
            ) as cms,
        ):
            sched.extra_args += DEFAULT_ELECTION
            cms.extra_args += DEFAULT_ELECTION
            meter = CpuMeter()
            meter.start()
            metered_from = time.monotonic()
            sched.start("sched-a", "--metrics-listen", f"127.0.0.1:{args.metrics_port}")
            cms.start("cm-a")
            wait_for(lambda: lease(client, "hakube-scheduler")[0], 60, "a scheduler to lead")
            wait_for(
                lambda: lease(client, "hakube-controller-manager")[0],
                60,
                "a controller-manager to lead",
            )
            leases0 = {
                n: lease(client, n) for n in ("hakube-scheduler", "hakube-controller-manager")
            }
            sched.start("sched-b")
            cms.start("cm-b")
            wait_for(lambda: len(binds.at) >= args.pods, 600, "the backlog to be bound")
            firsts = sorted(binds.at.values())
            out["backlog_pods_per_s"] = args.pods / max(firsts[-1] - firsts[0], 1e-9)
            created: dict[str, float] = {}

            def create(i: int) -> None:
                name = f"stream-{i:05d}"
                client.pods.create(pod(name))
                created[name] = time.monotonic()

            t0 = time.monotonic()
            with ThreadPoolExecutor(args.writers) as pool:
                list(pool.map(create, range(args.stream_pods)))
            out["stream_create_per_s"] = args.stream_pods / (time.monotonic() - t0)
            wait_for(lambda: all(n in binds.at for n in created), 600, "the stream to be bound")
            lat = [binds.at[n] - created[n] for n in created]
            last = max(binds.at[n] for n in created)
            out["stream_pods_per_s"] = args.stream_pods / (last - t0)
            out["stream_p50_ms"] = pct(lat, 0.5) * 1000
            out["stream_p99_ms"] = pct(lat, 0.99) * 1000
            out["stream_mean_ms"] = statistics.fmean(lat) * 1000
            cpu = meter.stop()
            out.update(scrape(f"127.0.0.1:{args.metrics_port}"))
            out["cpu_ours"], out["cpu_foreign"] = cpu.ours, cpu.foreign
            # CPU seconds per bound pod, all our processes: comparable on a shared machine,
            # where pods/s depends on what the others run.
            out["cpu_ms_per_pod"] = (
                cpu.ours * (time.monotonic() - metered_from) / (args.pods + args.stream_pods) * 1000
            )
            leases1 = {n: lease(client, n) for n in leases0}
            out["leases"] = {
                n: {
                    "holder_before": leases0[n][0],
                    "holder_after": leases1[n][0],
                    "transitions_during_load": leases1[n][1] - leases0[n][1],
                }
                for n in leases0
            }
            out["scheduler_terms"] = sum(
                sched.log(i).count("started leading") for i in ("sched-a", "sched-b")
            )
            binds.stop()
        sim.stop()
        per_node: dict[str, int] = {}
        for p in client.pods.list(namespace="bench").items:
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
        out["pods_per_node_min_max"] = (min(per_node.values()), max(per_node.values()))
    keep = os.path.join(tempfile.gettempdir(), "schedbench-last-logs")
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(os.path.join(base, "components"), keep)
    shutil.rmtree(base, ignore_errors=True)
    return out


def _ns(name: str) -> Any:
    from hakube.api.v1 import core_pb2

    return core_pb2.Namespace(metadata={"name": name})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods", type=int, default=1000, help="backlog pods")
    p.add_argument("--stream-pods", type=int, default=1000)
    p.add_argument("--writers", type=int, default=16, help="client threads creating pods")
    p.add_argument(
        "--lease-renew",
        type=float,
        default=10.0,
        help="seconds between node lease renewals (agents: 10)",
    )
    p.add_argument("--bind-workers", type=int, default=16)
    p.add_argument(
        "--quiet",
        type=float,
        default=0.5,
        help="start once other processes use fewer cores than this",
    )
    p.add_argument("--quiet-wait", type=float, default=300, help="but wait at most this long")
    p.add_argument("--metrics-port", type=int, default=0, help="0: any free port")
    p.add_argument("--no-events", action="store_true", help="scheduler records no events")
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.quiet_wait
    while (busy := foreign_cpu(2.0)) > args.quiet and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: others use {busy:.1f} cores", file=sys.stderr)
    args.metrics_port = args.metrics_port or free_ports(1)[0]
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print_run(
        started,
        run(args),
        "reference: Kubernetes CI gate >= 100 pods/s (clusterloader2); scheduler_perf "
        "680-810 pods/s on large machines; hakube target >= 300 pods/s on 2 cores",
    )
    return 0


def print_run(started: str, out: dict[str, Any], note: str) -> None:
    """A run's figures as ``key: value`` lines after the machine's description."""
    print(f"started: {started}")
    for k, v in describe().items():
        print(f"{k}: {v}")
    for k, v in out.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    print(note)


if __name__ == "__main__":
    sys.exit(main())
