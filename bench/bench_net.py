"""What the pod network costs: iperf3 throughput pod-to-pod across nodes vs node-to-node.

Run: ``python -m bench.bench_net`` as root on a quiet machine (``--help`` for knobs; a smoke
run: ``--duration 2 --rounds 1``). It starts a two-node hakube.testing.netnodes cluster (nodes
in network namespaces on one bridge, each with its own containerd and agent), then, per round:

* node-to-node: ``iperf3 -s`` in node 2's namespace, ``iperf3 -c`` from node 1's, to node 2's
  address -- the bridge path every packet between nodes takes;
* pod-to-pod: the same between a pod on node 1 and a pod on node 2, by pod address: the
  packets also cross each node's pod bridge and veth and are routed by the host-gw routes.

iperf3 is the host's (Debian ``iperf3``, scripts/install/iperf3.sh), run inside each pod's
network namespace with ``nsenter`` (the test image has no iperf3); the pods are found by a
unique marker in their command line. The report keeps each path's median round and the cost
``1 - pod/node``; the target (the networking issue): the overlay-free path costs at most 10 %.
Foreign CPU during the run is reported: a busy machine makes the comparison meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import CpuMeter
from hakube.api import convert
from hakube.client.config import ENV_CONFIG
from hakube.local.cluster import write_config
from hakube.testing import pki as testpki
from hakube.testing.netnodes import NET_IMAGE, NetCluster, missing_prerequisites
from hakube.testing.wait import wait_for

TARGET_COST = 0.10
PORT = 5201


def _pid_of(marker: str) -> int:
    """The pid of the pod process started as ``sleep <marker>``."""
    want = b"sleep\0" + marker.encode() + b"\0"
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes() == want:
                    return int(d.name)
            except OSError:
                continue
    raise LookupError(f"no process 'sleep {marker}'")


def _iperf(server: list[str], client: list[str], address: str, duration: float) -> float:
    """Bits/s from ``client`` to an ``iperf3 -s`` started with ``server`` (argv prefixes)."""
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
                return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
            except (ValueError, KeyError):
                time.sleep(0.1)  # the server was not listening yet
        raise RuntimeError(f"iperf3 to {address} failed: {out[-300:]}")
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(5)


def _sleeper(name: str, node: str, marker: str) -> object:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": NET_IMAGE, "command": ["sleep", marker]}],
            },
        }
    )


def run(duration: float, rounds: int) -> dict[str, object]:
    with NetCluster(nodes=2) as c:
        n1, n2 = c.nodes["n1"], c.nodes["n2"]
        markers = {n: str(10_000_000 + secrets.randbelow(80_000_000)) for n in ("n1", "n2")}
        for node, marker in markers.items():
            c.client.pods.create(_sleeper(f"iperf-{node}", node, marker))  # type: ignore[arg-type]

        def running(name: str) -> bool:
            p = c.client.pods.get(name, namespace="default")
            return p.status.phase == "Running" and bool(p.status.pod_ip)

        for node in markers:
            wait_for(lambda node=node: running(f"iperf-{node}"), 60, f"pod on {node}", 0.2)
        pod_ip = c.client.pods.get("iperf-n2", namespace="default").status.pod_ip
        into_pod = {n: ["nsenter", "-t", str(_pid_of(m)), "-n", "--"] for n, m in markers.items()}
        cpu = CpuMeter()
        cpu.start()
        nodes, pods = [], []
        for _ in range(rounds):
            nodes.append(_iperf(n2.argv([]), n1.argv([]), n2.ip, duration))
            pods.append(_iperf(into_pod["n2"], into_pod["n1"], pod_ip, duration))
        foreign = round(cpu.stop().foreign, 2)
    node_bps, pod_bps = statistics.median(nodes), statistics.median(pods)
    cost = 1 - pod_bps / node_bps
    return {
        "node_to_node_gbit_s": round(node_bps / 1e9, 3),
        "pod_to_pod_gbit_s": round(pod_bps / 1e9, 3),
        "cost": round(cost, 4),
        "target_cost": TARGET_COST,
        "met": cost <= TARGET_COST,
        "rounds": {"node": nodes, "pod": pods},
        "duration_s": duration,
        "foreign_cpu": foreign,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_net", description=__doc__)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per iperf3 run")
    p.add_argument("--rounds", type=int, default=3, help="runs per path (median kept)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = p.parse_args(argv)
    missing = missing_prerequisites() + ([] if shutil.which("iperf3") else ["iperf3"])
    if missing:
        print("bench_net: missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        conf = os.path.join(tmp, "admin.conf")  # agents join with a token made as the admin
        write_config(conf, testpki.shared(), [])
        os.environ[ENV_CONFIG] = conf
        result = run(args.duration, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"node-to-node {result['node_to_node_gbit_s']} Gbit/s, pod-to-pod "
            f"{result['pod_to_pod_gbit_s']} Gbit/s: cost {float(result['cost']):.1%} "  # type: ignore[arg-type]
            f"(target <= {TARGET_COST:.0%}; foreign CPU {result['foreign_cpu']} cores)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
