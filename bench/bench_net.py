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

The paths alternate within a round (node, pod, Service; then the reverse order), and every run
is taken as :mod:`bench.netpath` describes: the cluster paused for its duration, iperf3's
ends pinned to fixed CPUs (``--pin``), the whole machine's CPU counted per GB received. One
run varies by about ±15 % from the next on the same path on a shared VM host, so the default
is many short rounds (40 of 2 s, about 5 minutes); the report gives each path's cost against
node-to-node over all rounds, ``1 - sum(pod)/sum(node)``, with a 95 % interval from
resampling rounds, in throughput and in CPU per GB.

``--cni-mode routed|bridge`` chooses how pods attach (the agents' ``--cni-mode``; routed, the
default, has no bridge). Every node runs ``hakube proxy`` (as a real node would;
``--no-proxy`` leaves it out and the pod-to-Service path with it), so the pod paths pay for
its hooks and for conntrack.
``--bridge-nf-call-iptables 0|1`` sets that sysctl in every node namespace first (the kernel's
default with br_netfilter loaded is 1: bridged frames traverse the IP netfilter hooks, which
Services need when a pod reaches a Service endpoint on its own bridge).

iperf3 is the host's (Debian ``iperf3``, scripts/install/iperf3.sh), run inside each pod's
network namespace with ``nsenter`` (the test image has no iperf3; ``NetNode.pod_argv``). The
target (the networking issue): the overlay-free path costs at most 10 %; the interval says
whether a run showed that. Foreign CPU during the run is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator

from bench.machine import CpuMeter
from bench.netpath import PORT, Sample, iperf, paired
from hakube.api import convert
from hakube.client.config import ENV_CONFIG
from hakube.local.cluster import write_config
from hakube.testing import pki as testpki
from hakube.testing.netnodes import NET_IMAGE, NetCluster, missing_prerequisites
from hakube.testing.nodeproxy import NodeProxies
from hakube.testing.wait import wait_for

TARGET_COST = 0.10


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
    pause: bool = True,
    pin: tuple[int, int] | None = (0, 1),
    streams: int = 1,
    fast_path: bool = False,
) -> dict[str, object]:
    with NetCluster(nodes=2, agent_extra=["--cni-mode", cni_mode]) as c:
        n1, n2 = c.nodes["n1"], c.nodes["n2"]
        if bridge_nf:
            _set_bridge_nf(c, bridge_nf)
        proxies = NodeProxies(c, fast_path=fast_path)
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
        got: dict[str, list[Sample]] = {name: [] for name in targets}
        for i in range(rounds):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for name in order:
                got[name].append(
                    iperf(*targets[name], duration, pin=pin, pause=pause, streams=streams)
                )
        foreign = round(cpu.stop().foreign, 2)
        proxies.close()
    return summarise(got, "node") | {
        "cni_mode": cni_mode,
        "proxy": proxy,
        "bridge_nf_call_iptables": bridge_nf or "default",
        "duration_s": duration,
        "paused": pause,
        "pin": list(pin) if pin else None,
        "streams": streams,
        "fast_path": fast_path,
        "foreign_cpu": foreign,
    }


def summarise(got: dict[str, list[Sample]], base: str) -> dict[str, object]:
    """Per path: median throughput and CPU per GB, every round, and -- for every path but
    ``base`` -- its paired cost against ``base`` in throughput and in CPU per GB."""
    out: dict[str, object] = {"target_cost": TARGET_COST}
    for name, samples in got.items():
        bps = [s.bps for s in samples]
        cpu = [s.cpu_s_per_gb for s in samples]
        row: dict[str, object] = {
            "gbit_s": round(statistics.median(bps) / 1e9, 3),
            "cpu_s_per_gb": round(statistics.median(cpu), 4),
            "rounds_gbit_s": [round(b / 1e9, 3) for b in bps],
            "rounds_cpu_s_per_gb": [round(c, 4) for c in cpu],
        }
        if name != base:
            row["cost"] = paired([s.bps for s in got[base]], bps)
            row["cpu_cost"] = paired(cpu, [s.cpu_s_per_gb for s in got[base]])
        out[name] = row
    return out


@contextlib.contextmanager
def admin_config() -> Iterator[None]:
    """HAKUBE_CONFIG naming an admin client config of the test CA while inside (the agents
    join with a bootstrap token made as the admin)."""
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        conf = os.path.join(tmp, "admin.conf")
        write_config(conf, testpki.shared(), [])
        os.environ[ENV_CONFIG] = conf
        yield


def pin_arg(text: str) -> tuple[int, int] | None:
    """``--pin CLIENT,SERVER`` (CPU numbers), or ``none``."""
    if text == "none":
        return None
    client, server = (int(x) for x in text.split(","))
    return client, server


def report_line(name: str, row: dict[str, object]) -> str:
    cost, cpu = row["cost"], row["cpu_cost"]
    assert isinstance(cost, dict) and isinstance(cpu, dict)
    return (
        f"{name}: {row['gbit_s']} Gbit/s, cost {cost['cost']:.1%} "
        f"(95 % {cost['ci95_low']:.1%}..{cost['ci95_high']:.1%}, median round "
        f"{cost['median_round_cost']:.1%}); CPU/GB {row['cpu_s_per_gb']} s, cost "
        f"{cpu['cost']:.1%} (95 % {cpu['ci95_low']:.1%}..{cpu['ci95_high']:.1%})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_net", description=__doc__)
    p.add_argument("--duration", type=float, default=2.0, help="seconds per iperf3 run")
    p.add_argument("--rounds", type=int, default=40, help="paired rounds (runs per path)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.add_argument(
        "--no-pause",
        action="store_true",
        help="leave the cluster running during the runs (adds its CPU as noise)",
    )
    p.add_argument(
        "--pin",
        type=pin_arg,
        default=(0, 1),
        help="CPUs of the iperf3 client and server, 'C,S' (default 0,1) or 'none'",
    )
    p.add_argument(
        "--streams",
        type=int,
        default=1,
        help="parallel TCP streams per run (iperf3 -P; 1, iperf3's default, is the issue's "
        "measure; 4 keep both CPUs busy, which measures what the path costs in CPU)",
    )
    p.add_argument(
        "--fast-path",
        action="store_true",
        help="run the proxies with --fast-path-device (the pod fast path on each node's uplink)",
    )
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
            pause=not args.no_pause,
            pin=args.pin,
            streams=args.streams,
            fast_path=args.fast_path,
        )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    node = result["node"]
    assert isinstance(node, dict)
    print(
        f"{args.cni_mode}, {args.rounds} rounds of {args.duration} s, paused: "
        f"{not args.no_pause}, pin: {args.pin}, streams: {args.streams}, fast path: "
        f"{args.fast_path}; "
        f"foreign CPU {result['foreign_cpu']} cores"
    )
    print(f"node: {node['gbit_s']} Gbit/s, CPU/GB {node['cpu_s_per_gb']} s")
    for name in ("pod", "service"):
        row = result.get(name)
        if isinstance(row, dict):
            print(report_line(name, row))
    print(f"target: the pod path costs <= {TARGET_COST:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
