"""What metrics cost: scrape duration and /metrics size of every component at scale.

Setup: a fresh 3-master LocalCluster; a ``hakube scheduler`` and a ``hakube controller-manager``
process with ``--metrics-listen``; ``--nodes`` simulated nodes (the fake kubelet: Node objects
with leases renewed every ``--lease-renew`` s, pods marked Running once bound) and one real
``hakube agent`` on the simulated runtime with ``--metrics-listen``; ``--deployments``
Deployments sharing ``--pods`` replicas, rolled out until every pod is Running. Then each
component's /metrics is fetched ``--scrapes`` times (as Prometheus would, one after another)
and the report gives, per component: bytes, series (sample lines), and scrape duration p50 /
p99 / max. Series counts must not grow with nodes or pods (labels are bounded): compare a run
with ``--nodes 10 --pods 100`` against the full one.

Run (quiet machine; several minutes at full size):
``python -m bench.bench_metrics --nodes 1000 --pods 10000``; a smoke run:
``python -m bench.bench_metrics --nodes 20 --pods 100 --scrapes 5``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
import urllib.request

from hakube.api.v1 import core_pb2, workloads_pb2
from hakube.cli.token_cmd import create_token
from hakube.local.agents import LocalAgents
from hakube.local.cluster import free_ports
from hakube.pki import certs, files
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

NAMESPACE = "bench-metrics"


def scrape(address: str) -> tuple[float, int, int]:
    """(seconds, bytes, sample lines) of one GET /metrics."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as r:
        body = r.read()
    elapsed = time.perf_counter() - t0
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return elapsed, len(body), samples


def deployment(name: str, replicas: int) -> workloads_pb2.Deployment:
    labels = {"app": name}
    return workloads_pb2.Deployment(
        metadata={"name": name, "namespace": NAMESPACE},
        spec={
            "replicas": replicas,
            "selector": {"match_labels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "bench/app:1"}]},
            },
        },
    )


def report(name: str, address: str, n: int) -> str:
    runs = [scrape(address) for _ in range(n)]
    times = sorted(r[0] for r in runs)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    size, samples = runs[-1][1], runs[-1][2]
    return (
        f"| {name} | {size / 1024:.1f} KiB | {samples} | {statistics.median(times) * 1e3:.1f} ms "
        f"| {p99 * 1e3:.1f} ms | {times[-1] * 1e3:.1f} ms |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--deployments", type=int, default=10)
    p.add_argument("--scrapes", type=int, default=30)
    p.add_argument("--lease-renew", type=float, default=10.0)
    p.add_argument("--rollout-timeout", type=float, default=1800.0)
    args = p.parse_args()
    base = tempfile.mkdtemp(prefix="bench-metrics-")
    with LocalCluster(os.path.join(base, "c"), 3) as cluster:
        sched_addr, cm_addr, agent_addr = (f"127.0.0.1:{port}" for port in free_ports(3))
        with (
            ComponentProcs(
                "scheduler", cluster.endpoints(), base, extra_args=["--metrics-listen", sched_addr]
            ) as sched,
            ComponentProcs(
                "controller-manager",
                cluster.endpoints(),
                base,
                extra_args=["--metrics-listen", cm_addr],
            ) as cms,
            cluster.client(timeout=60) as client,
            FakeKubelet(client, renew_interval=args.lease_renew) as kubelet,
        ):
            sched.start("bench-scheduler", "--bind-workers", "8")
            cms.start("bench-cm")
            token, _ = create_token(client, datetime.timedelta(hours=1), "bench_metrics")
            ca_hash = certs.ca_hash(files.read(cluster.pki.ca_cert))
            agents = LocalAgents(
                base,
                cluster.endpoints(),
                token=str(token),
                ca_hash=ca_hash,
                metrics={"node-1": agent_addr},
            )
            agents.start(1)
            try:
                t0 = time.monotonic()
                for i in range(args.nodes):
                    kubelet.add_node(f"sim-{i:05d}")
                print(f"{args.nodes} nodes in {time.monotonic() - t0:.1f} s", flush=True)
                client.namespaces.create(core_pb2.Namespace(metadata={"name": NAMESPACE}))
                per = args.pods // args.deployments
                for i in range(args.deployments):
                    client.deployments.create(deployment(f"d{i}", per))
                total = per * args.deployments

                def running() -> bool:
                    pods = client.pods.list(namespace=NAMESPACE).items
                    return sum(1 for q in pods if q.status.phase == "Running") >= total

                wait_for(running, args.rollout_timeout, f"{total} pods Running", interval=2)
                print(f"{total} pods Running after {time.monotonic() - t0:.1f} s", flush=True)
                print(
                    f"\n{args.nodes} nodes, {total} pods, {args.scrapes} scrapes each\n\n"
                    "| component | /metrics size | series | p50 | p99 | max |\n"
                    "|---|---|---|---|---|---|"
                )
                for m in cluster.masters:
                    print(report(f"master {m.name}", m.metrics, args.scrapes))
                print(report("scheduler", sched_addr, args.scrapes))
                print(report("controller-manager", cm_addr, args.scrapes))
                print(report("agent node-1", agent_addr, args.scrapes))
            finally:
                agents.stop()


if __name__ == "__main__":
    main()
