"""What the pod network costs: iperf3 throughput pod-to-pod across nodes vs node-to-node.

Run: ``python -m bench.bench_net`` as root on a quiet machine (``--help`` for knobs; a smoke
run: ``--duration 2 --rounds 1``). It starts a two-node hakube.testing.netnodes cluster (nodes
in network namespaces on one bridge, each with its own containerd and agent), then, per round:

* node-to-node: ``iperf3 -s`` in node 2's namespace, ``iperf3 -c`` from node 1's, to node 2's
  address -- the bridge path every packet between nodes takes;
* pod-to-pod: the same between a pod on node 1 and a pod on node 2, by pod address: the
  packets also cross each node's pod veth (and, with ``--cni-mode bridge``, its pod bridge)
  and are routed by the host-gw routes;
* pod-to-Service: from the pod on node 1 to the ClusterIP of a Service whose one endpoint is
  the pod on node 2: the first packet of the connection is DNATed by ``hakube proxy``'s
  nftables rules, the rest by conntrack.

The paths alternate within a round (node, pod, Service; then the reverse order), so a burst of
other work on the machine hits all of them alike. Besides throughput, each run reports what it
cost in CPU: the CPU seconds of the iperf3 client and server (iperf3's own ``getrusage``
figures) per GB received. Without IRQ time accounting in the kernel
(CONFIG_IRQ_TIME_ACCOUNTING off, as on this project's machines), the softirq work of veths,
bridge, routing and netfilter -- which runs in the context of the task that sends or
receives -- is charged to them; on a busy machine, where throughput mostly measures how much
CPU the run got, CPU per GB still measures what a path costs (``cpu_cost``).

``--cni-mode routed|bridge`` chooses how pods attach (the agents' ``--cni-mode``; routed, the
default, has no bridge). Every node runs ``hakube proxy`` (as a real node would;
``--no-proxy`` leaves it out and the pod-to-Service path with it), so the pod paths pay for
its hooks and for conntrack.
``--bridge-nf-call-iptables 0|1`` sets that sysctl in every node namespace first (the kernel's
default with br_netfilter loaded is 1: bridged frames traverse the IP netfilter hooks, which
Services need when a pod reaches a Service endpoint on its own bridge).

iperf3 is the host's (Debian ``iperf3``, scripts/install/iperf3.sh), run inside each pod's
network namespace with ``nsenter`` (the test image has no iperf3; ``NetNode.pod_argv``). The
report keeps each path's median round and the cost ``1 - pod/node``; the target (the
networking issue): the overlay-free path costs at most 10 %.
Foreign CPU during the run is reported: a busy machine makes the comparison meaningless.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from bench.machine import CpuMeter
from hakube.api import convert
from hakube.client.config import ENV_CONFIG
from hakube.local.cluster import write_config
from hakube.testing import pki as testpki
from hakube.testing.netnodes import NET_IMAGE, NetCluster, missing_prerequisites
from hakube.testing.nodeproxy import NodeProxies
from hakube.testing.wait import wait_for

TARGET_COST = 0.10
PORT = 5201


def _iperf(
    server: list[str], client: list[str], address: str, duration: float
) -> tuple[float, float]:
    """(bits/s, CPU seconds per GB) from ``client`` to an ``iperf3 -s`` started with
    ``server`` (argv prefixes)."""
    srv = subprocess.Popen(
        [*server, "iperf3", "-s", "-1", "-p", str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        out = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            res = subprocess.run(
                [*client, "iperf3", "-c", address, "-p", str(PORT), "-J", "-t", str(duration)],
                capture_output=True,
                text=True,
                timeout=duration + 30,
            )
            out = res.stdout
            try:
                end = json.loads(out)["end"]
                got, cpu = end["sum_received"], end["cpu_utilization_percent"]
                cpu_s = (cpu["host_total"] + cpu["remote_total"]) / 100 * float(got["seconds"])
                return float(got["bits_per_second"]), cpu_s / (float(got["bytes"]) / 1e9)
            except (ValueError, KeyError, ZeroDivisionError):
                time.sleep(0.1)  # the server was not listening yet
        raise RuntimeError(f"iperf3 to {address} failed: {out[-300:]}")
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(5)


def _sleeper(name: str, node: str) -> object:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"bench": name}},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": NET_IMAGE, "command": ["sleep", "86400"]}],
            },
        }
    )


def _service(client: object, target: str) -> str:
    """A Service whose one endpoint is pod ``target`` (iperf3's port); its ClusterIP once it
    is allocated and the Endpoints list the pod."""
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iperf", "namespace": "default"},
        "spec": {"selector": {"bench": target}, "ports": [{"port": PORT, "targetPort": PORT}]},
    }
    client.apply(body)  # type: ignore[attr-defined]

    def ready() -> bool:
        try:
            ep = client.endpoints.get("iperf", namespace="default")  # type: ignore[attr-defined]
        except Exception:
            return False
        svc = client.services.get("iperf", namespace="default")  # type: ignore[attr-defined]
        return bool(svc.spec.cluster_ip) and any(s.addresses for s in ep.subsets)

    wait_for(ready, 60, "the iperf Service's ClusterIP and endpoint", 0.2)
    svc = client.services.get("iperf", namespace="default")  # type: ignore[attr-defined]
    return str(svc.spec.cluster_ip)


def iperf_pods(c: NetCluster) -> tuple[str, dict[str, list[str]]]:
    """Pods ``iperf-n1`` and ``iperf-n2`` on nodes n1 and n2, running: the address of the one
    on n2 and, per node, the argv prefix that runs a command in its pod's network."""
    for node in ("n1", "n2"):
        c.client.pods.create(_sleeper(f"iperf-{node}", node))  # type: ignore[arg-type]

    def running(name: str) -> bool:
        p = c.client.pods.get(name, namespace="default")
        return p.status.phase == "Running" and bool(p.status.pod_ip)

    for node in ("n1", "n2"):
        wait_for(lambda node=node: running(f"iperf-{node}"), 60, f"pod on {node}", 0.2)
    pod_ip = c.client.pods.get("iperf-n2", namespace="default").status.pod_ip
    return pod_ip, {n: c.nodes[n].pod_argv(f"iperf-{n}", []) for n in ("n1", "n2")}


def _set_bridge_nf(c: NetCluster, value: str) -> None:
    for node in c.nodes.values():
        node.run(["sysctl", "-qw", f"net.bridge.bridge-nf-call-iptables={value}"])


def run(
    duration: float,
    rounds: int,
    *,
    proxy: bool = True,
    bridge_nf: str = "",
    cni_mode: str = "routed",
) -> dict[str, object]:
    with NetCluster(nodes=2, agent_extra=["--cni-mode", cni_mode]) as c:
        n1, n2 = c.nodes["n1"], c.nodes["n2"]
        if bridge_nf:
            _set_bridge_nf(c, bridge_nf)
        proxies = NodeProxies(c)
        if proxy:
            proxies.start_all()
        pod_ip, into_pod = iperf_pods(c)
        service_ip = _service(c.client, "iperf-n2") if proxy else ""
        if proxy:  # the proxies of both nodes have the Service programmed
            want = f"{service_ip} . tcp . {PORT}"
            for node in (n1, n2):
                wait_for(
                    lambda node=node: want in node.run(["nft", "list", "ruleset"]).stdout,
                    30,
                    f"the Service programmed on {node.name}",
                    0.2,
                )
        cpu = CpuMeter()
        cpu.start()
        targets = {
            "node": (n2.argv([]), n1.argv([]), n2.ip),
            "pod": (into_pod["n2"], into_pod["n1"], pod_ip),
        }
        if proxy:
            targets["service"] = (into_pod["n2"], into_pod["n1"], service_ip)
        paths: dict[str, list[float]] = {name: [] for name in targets}
        cpu_per_gb: dict[str, list[float]] = {name: [] for name in targets}
        for i in range(rounds):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for name in order:
                bps, cost_s = _iperf(*targets[name], duration)
                paths[name].append(bps)
                cpu_per_gb[name].append(round(cost_s, 4))
        foreign = round(cpu.stop().foreign, 2)
        proxies.close()
    med = {name: statistics.median(v) for name, v in paths.items()}
    cpu_med = {name: statistics.median(v) for name, v in cpu_per_gb.items()}
    node_bps, pod_bps = med["node"], med["pod"]
    svc_bps = med.get("service", 0.0)
    cost = 1 - pod_bps / node_bps
    return {
        "cni_mode": cni_mode,
        "node_to_node_gbit_s": round(node_bps / 1e9, 3),
        "pod_to_pod_gbit_s": round(pod_bps / 1e9, 3),
        "pod_to_service_gbit_s": round(svc_bps / 1e9, 3),
        "cost": round(cost, 4),
        "service_cost": round(1 - svc_bps / node_bps, 4) if svc_bps else None,
        "cpu_s_per_gb": {name: round(v, 4) for name, v in cpu_med.items()},
        "cpu_cost": round(1 - cpu_med["node"] / cpu_med["pod"], 4),
        "target_cost": TARGET_COST,
        "met": cost <= TARGET_COST,
        "proxy": proxy,
        "bridge_nf_call_iptables": bridge_nf or "default",
        "rounds": paths,
        "rounds_cpu_s_per_gb": cpu_per_gb,
        "duration_s": duration,
        "foreign_cpu": foreign,
    }


@contextlib.contextmanager
def admin_config() -> Iterator[None]:
    """HAKUBE_CONFIG naming an admin client config of the test CA while inside (the agents
    join with a bootstrap token made as the admin)."""
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        conf = os.path.join(tmp, "admin.conf")
        write_config(conf, testpki.shared(), [])
        os.environ[ENV_CONFIG] = conf
        yield


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_net", description=__doc__)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per iperf3 run")
    p.add_argument("--rounds", type=int, default=3, help="runs per path (median kept)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.add_argument(
        "--no-proxy", action="store_true", help="no hakube proxy on the nodes (no Service path)"
    )
    p.add_argument(
        "--bridge-nf-call-iptables",
        choices=["0", "1"],
        default="",
        help="set net.bridge.bridge-nf-call-iptables in the node namespaces first",
    )
    p.add_argument(
        "--cni-mode",
        choices=["routed", "bridge"],
        default="routed",
        help="how pods attach to their node (the agents' --cni-mode)",
    )
    args = p.parse_args(argv)
    missing = missing_prerequisites() + ([] if shutil.which("iperf3") else ["iperf3"])
    if missing:
        print("bench_net: missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    with admin_config():
        result = run(
            args.duration,
            args.rounds,
            proxy=not args.no_proxy,
            bridge_nf=args.bridge_nf_call_iptables,
            cni_mode=args.cni_mode,
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.cni_mode}: node-to-node {result['node_to_node_gbit_s']} Gbit/s, pod-to-pod "
            f"{result['pod_to_pod_gbit_s']} Gbit/s: cost {float(result['cost']):.1%} "  # type: ignore[arg-type]
            f"(target <= {TARGET_COST:.0%}), pod-to-Service {result['pod_to_service_gbit_s']} "
            f"Gbit/s; in CPU per GB the pod path costs {float(result['cpu_cost']):.1%} "  # type: ignore[arg-type]
            f"more; foreign CPU {result['foreign_cpu']} cores"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
