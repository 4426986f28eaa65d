"""The scale run: 1,000 simulated nodes and 30,000 pods on three masters, and what it costs.

Setup: a fresh 3-master LocalCluster; one ``hakube scheduler`` and one ``hakube
controller-manager`` (default election timings: lease 4 s, renew deadline 3 s, retry 0.5 s;
``--standbys`` adds a standby of each); ``--nodes`` simulated nodes (the fake kubelet: a Node and
its kube-node-lease Lease each, the lease renewed every ``--lease-renew`` s at the node's own
moment of the interval, the node status heartbeat posted every ``--status-interval`` s, as
agents do; bound pods marked Running). ``--pods`` pods come from ``--deployments`` Deployments.

Phases and what each reports:

1. **nodes**: registration time.
2. **pods**: the Deployments are created at once; time until every pod is Running and pods/s;
   CPU seconds per pod summed over our processes (masters, scheduler, controller-manager and
   this process, which plays the nodes) -- the figure to compare variants by on a shared
   machine, where wall-clock rates depend on what others run.
3. **rest**: ``--rest`` s with nothing but heartbeats: each process's CPU (cores) and RSS.
4. **reads**: ``hakubectl get pods -A`` (paginated lists) wall time and line count, beside
   ``hakubectl get namespaces`` (the command's own start) and the same list in this process;
   a new pod informer's start time (paginated list, then watch) until synced.
5. **rollout**: the template of Deployments holding ``--rollout-pods`` pods is changed; while
   they roll, this process creates a probe pod every ``--probe-interval`` s (a pod no scheduler
   takes) and a watch on all pods of the namespace -- which also carries every rollout event --
   notes when each probe arrives. Watch delivery = arrival - create acknowledged (0 when it
   came first; a tight bound on commit -> delivery), p50/p99/max, as bench.bench_watch does.
6. **leases**: the scheduler's and controller-manager's leaseTransitions and logged terms over
   the whole run (target 0 transitions, 1 term each); nodes NotReady at the end; node lease
   renewals that failed and the longest gap between two renewals of one node.

Wall-clock figures (times, pods/s, delivery) depend on what else the machine runs; "foreign"
says how many cores others used during the pods phase. Masters' RSS and CPU seconds per pod
do not.

Run (quiet machine; tens of minutes at full size):
``python -m bench.bench_scale`` (1,000 nodes, 30,000 pods); reduced:
``python -m bench.bench_scale --nodes 100 --pods 3000 --rollout-pods 1000``; a smoke run
(seconds): ``python -m bench.bench_scale --quick``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.bench_metrics import deployment
from bench.machine import CpuMeter
from bench.scheduler_bench import DEFAULT_ELECTION, add_nodes, lease, pct, print_run
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.client.config import ENV_CONFIG
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

NAMESPACE = "bench-scale"
COMPONENTS = ("hakube-scheduler", "hakube-controller-manager")
CLUSTER_CIDR = "10.0.0.0/14"
"""1,024 node ranges of /24, as a 1,000-node cluster is configured: the default /16 holds 256,
and 744 nodes waiting for a range would be measured instead of the cluster."""
QUICK = {
    "nodes": 20,
    "pods": 200,
    "deployments": 4,
    "rollout_pods": 50,
    "rest": 3.0,
    "probe_interval": 0.1,
}


@dataclass
class Proc:
    """One of our processes, read from /proc."""

    name: str
    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MiB."""
        vals = {"VmRSS": 0.0, "VmHWM": 0.0}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in vals:
                        vals[key] = int(line.split()[1]) / 1024
        except OSError:
            pass
        return vals["VmRSS"], vals["VmHWM"]


def cpu_of(procs: list[Proc]) -> dict[str, float]:
    return {p.name: p.cpu_s() for p in procs}


def ready_pods(client: Client) -> tuple[int, int]:
    """(Running and up to date, wanted) over the benchmark's Deployments."""
    ready = want = 0
    for d in client.deployments.list(namespace=NAMESPACE).items:
        want += d.spec.replicas
        if d.status.observed_generation >= d.metadata.generation:
            ready += min(d.status.updated_replicas, d.status.available_replicas)
    return ready, want


def wait_rolled(client: Client, timeout: float, what: str) -> None:
    def done() -> bool:
        ready, want = ready_pods(client)
        return ready >= want

    wait_for(done, timeout, what, interval=1.0)


class Probes:
    """Probe pods created during the rollout; a watch of the namespace notes their arrival."""

    def __init__(self, client: Client, interval: float) -> None:
        self.client = client
        self.interval = interval
        self.acked: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.events = 0
        self._stop = threading.Event()
        self._watch = client.pods.watch(namespace=NAMESPACE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._reader.start()
        self._writer.start()

    def _read(self) -> None:
        for ev in self._watch:
            self.events += 1
            p = ev.object
            if p is not None and p.metadata.name.startswith("probe-"):
                self.arrived.setdefault(p.metadata.name, time.monotonic())

    def _write(self) -> None:
        i = 0
        while not self._stop.wait(self.interval):
            name = f"probe-{i:05d}"
            p = pod_pb2.Pod(metadata={"name": name, "namespace": NAMESPACE})
            p.spec.scheduler_name = "bench-probe"  # no scheduler takes it
            p.spec.containers.add(name="c", image="bench/probe:1")
            try:
                self.client.pods.create(p)
            except errors.HakubeError:
                continue
            self.acked[name] = time.monotonic()
            i += 1

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._writer.join(30)
        wait_for(lambda: set(self.acked) <= set(self.arrived), 30, "every probe on the watch")
        self._watch.stop()
        lag = [max(0.0, self.arrived[n] - self.acked[n]) for n in self.acked]
        return {
            "rollout_watch_events": self.events,
            "rollout_probes": len(lag),
            "rollout_delivery_p50_ms": pct(lag, 0.5) * 1000,
            "rollout_delivery_p99_ms": pct(lag, 0.99) * 1000,
            "rollout_delivery_max_ms": max(lag, default=math.nan) * 1000,
        }


def hakubectl(config: str, *args: str) -> tuple[float, int]:
    """Seconds and output lines of ``hakubectl ARGS`` (the process's start included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKUBE_")}
    env[ENV_CONFIG] = config
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "hakube.cli.ctl", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    return time.monotonic() - t0, len(out.stdout.splitlines())


def informer_start(client: Client) -> float:
    inf = client.informer(pod_pb2.Pod)
    t0 = time.monotonic()
    inf.start()
    try:
        if not inf.wait_for_sync(600):
            raise TimeoutError("the pod informer did not sync in 600 s")
        return time.monotonic() - t0
    finally:
        inf.stop()


def not_ready_nodes(client: Client) -> int:
    n = 0
    for node in client.nodes.list().items:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        n += not ready or ready[0].status != "True"
    return n


def roll(client: Client, count: int) -> int:
    """Change the template of Deployments holding at least ``count`` pods; pods they hold."""
    rolled = 0
    for d in client.deployments.list(namespace=NAMESPACE).items:
        if rolled >= count:
            break
        for _ in range(5):
            d.spec.template.metadata.annotations["bench/rollout"] = str(time.time())
            try:
                client.deployments.update(d)
                break
            except errors.Conflict:
                d = client.deployments.get(d.metadata.name, namespace=NAMESPACE)
        rolled += d.spec.replicas
    return rolled


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The run in a fresh directory; the components' logs are kept in
    $TMPDIR/bench-scale-last-logs, the rest removed, also when the run fails."""
    base = tempfile.mkdtemp(prefix="bench-scale-")
    logs = os.path.join(base, "components")
    os.makedirs(logs)
    try:
        return measure(args, base, logs)
    finally:
        keep = os.path.join(tempfile.gettempdir(), "bench-scale-last-logs")
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(logs, keep)
        shutil.rmtree(base, ignore_errors=True)


def measure(args: argparse.Namespace, base: str, logs: str) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods}
    with (
        LocalCluster(os.path.join(base, "c"), 3) as cluster,
        cluster.client(timeout=60) as client,
        ComponentProcs(
            "scheduler", cluster.endpoints(), logs, extra_args=DEFAULT_ELECTION, log_level="info"
        ) as sched,
        ComponentProcs(
            "controller-manager",
            cluster.endpoints(),
            logs,
            extra_args=[*DEFAULT_ELECTION, "--cluster-cidr", CLUSTER_CIDR],
            log_level="info",
        ) as cms,
    ):
        client.namespaces.create(core_pb2.Namespace(metadata={"name": NAMESPACE}))
        kubelet = FakeKubelet(
            client,
            renew_interval=args.lease_renew,
            status_interval=args.status_interval,
            spread=True,
            workers=args.node_workers,
            pod_workers=args.pod_workers,
        )
        per_node = max(110, 2 * math.ceil(args.pods / max(args.nodes, 1)))
        out["node_registration_s"] = add_nodes(kubelet, args.nodes, 16, "sim-", "256Gi", per_node)
        kubelet.start()
        procs = [Proc(m.name, m.proc.pid) for m in cluster.masters if m.proc is not None]
        procs.append(Proc("scheduler", sched.start("sched-a").pid))
        procs.append(Proc("controller-manager", cms.start("cm-a").pid))
        procs.append(Proc("bench (nodes)", os.getpid()))
        for name in COMPONENTS:
            wait_for(lambda n=name: lease(client, n)[0], 60, f"{name} to lead")  # type: ignore[misc]
        leases0 = {n: lease(client, n) for n in COMPONENTS}
        for i in range(args.standbys):
            sched.start(f"sched-s{i}")
            cms.start(f"cm-s{i}")

        per = math.ceil(args.pods / args.deployments)
        cpu0, meter = cpu_of(procs), CpuMeter()
        meter.start()
        t0 = time.monotonic()
        for i in range(args.deployments):
            d = deployment(f"d{i:03d}", per)
            d.metadata.namespace = NAMESPACE
            d.spec.template.spec.containers[0].resources.requests.update(
                {"cpu": "10m", "memory": "16Mi"}
            )
            client.deployments.create(d)
        wait_rolled(client, args.timeout, f"{per * args.deployments} pods Running")
        elapsed = time.monotonic() - t0
        cpu1, load = cpu_of(procs), meter.stop()
        total = per * args.deployments
        out["pods_running_s"] = elapsed
        out["pods_per_s"] = total / elapsed
        used = {p: cpu1[p] - cpu0[p] for p in cpu1}
        out["cpu_ms_per_pod"] = sum(used.values()) / total * 1000
        out["cpu_ms_per_pod_by_process"] = {p: round(v / total * 1000, 2) for p, v in used.items()}
        out["cores_ours_foreign_during_pods"] = (round(load.ours, 2), round(load.foreign, 2))

        time.sleep(min(5.0, args.rest))  # let the last status writes and events settle
        cpu0, t0 = cpu_of(procs), time.monotonic()
        time.sleep(args.rest)
        cpu1, wall = cpu_of(procs), time.monotonic() - t0
        out["cores_at_rest"] = {p: round((cpu1[p] - cpu0[p]) / wall, 3) for p in cpu1}
        out["rss_mib_now_peak"] = {p.name: tuple(round(v) for v in p.memory_mib()) for p in procs}

        out["get_pods_all_s"], out["get_pods_all_lines"] = hakubectl(
            cluster.admin_config, "get", "pods", "-A"
        )
        out["hakubectl_get_ns_s"] = hakubectl(cluster.admin_config, "get", "namespaces")[0]
        t0 = time.monotonic()
        out["list_pods_all"] = len(client.pods.list().items)
        out["list_pods_all_s"] = time.monotonic() - t0
        out["informer_start_s"] = informer_start(client)

        probes = Probes(client, args.probe_interval)
        t0 = time.monotonic()
        out["rollout_pods"] = roll(client, args.rollout_pods)
        wait_rolled(client, args.timeout, f"the rollout of {out['rollout_pods']} pods")
        out["rollout_s"] = time.monotonic() - t0
        out.update(probes.stop())

        leases1 = {n: lease(client, n) for n in COMPONENTS}
        out["lease_transitions"] = {n: leases1[n][1] - leases0[n][1] for n in COMPONENTS}
        out["terms_logged"] = {
            "scheduler": sum(
                sched.log(i).count("started leading")
                for i in ["sched-a", *(f"sched-s{j}" for j in range(args.standbys))]
            ),
            "controller-manager": sum(
                cms.log(i).count("started leading")
                for i in ["cm-a", *(f"cm-s{j}" for j in range(args.standbys))]
            ),
        }
        out["nodes_not_ready"] = not_ready_nodes(client)
        out["node_renew_errors"] = kubelet.renew_errors
        out["node_max_renew_gap_s"] = kubelet.max_renew_gap
        kubelet.stop()
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=30000)
    p.add_argument("--deployments", type=int, default=30)
    p.add_argument("--rollout-pods", type=int, default=3000)
    p.add_argument("--lease-renew", type=float, default=10.0, help="node lease renewal, s")
    p.add_argument("--status-interval", type=float, default=60.0, help="node status post, s")
    p.add_argument("--pod-workers", type=int, default=8, help="fake kubelet pod workers")
    p.add_argument(
        "--node-workers", type=int, default=16, help="threads writing node leases and status"
    )
    p.add_argument("--standbys", type=int, default=0, help="standby scheduler/cm each")
    p.add_argument("--rest", type=float, default=30.0, help="seconds measured at rest")
    p.add_argument("--probe-interval", type=float, default=0.1)
    p.add_argument("--timeout", type=float, default=3600.0, help="per phase, s")
    p.add_argument("--quick", action="store_true", help="a smoke run at a tiny size")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = run(args)
    print_run(
        started,
        out,
        "targets: master RSS <= 1.5 GiB each; lease transitions 0; "
        "reference: Kubernetes 5,000 nodes / 150,000 pods",
    )
    return out


if __name__ == "__main__":
    main()
