"""Which node settings change what the pod path costs: paired A/B rounds on one cluster.

Run: ``python -m bench.bench_net_ab`` as root (``--help``; a smoke run: ``--rounds 1
--duration 1``). It starts the cluster of ``bench.bench_net`` (two nodes in network
namespaces on one bridge, routed pod veths, ``hakube proxy`` on both nodes with the pod
network as ``--cluster-cidr``, one sleeping pod per node) and then, per round, for each
variant in turn (the order reversed every other round): applies the variant in both node
namespaces, runs iperf3 node-to-node and pod-to-pod (same flags, same topology as
``bench.bench_net``; which one goes first alternates too), and undoes the variant. A round's
cost is ``1 - pod/node`` of that round's pair, so a burst of other work on the machine hits
both sides of it; the report keeps each variant's median.

Variants:

* ``default``: the nodes as the agent and the proxy configure them -- pod-to-pod TCP/UDP
  untracked (the proxy's ``raw-prerouting`` chain, ``--untrack-pod-traffic``);
* ``tracked``: the same with that chain's rule removed for the round (what
  ``--no-untrack-pod-traffic`` gives): every packet through conntrack and the NAT hooks;
* ``gro``: ``default`` plus GRO on the node ends of the pod veths (``ethtool -K … gro on``;
  veths come with it off), which makes the veth deliver by NAPI.

Besides throughput, CPU seconds per GB: iperf3's own figures for client and server plus
what the ``ksoftirqd`` threads used meanwhile (on a busy machine the kernel defers softirq
work, the veths', the forwarding's and netfilter's, to them; without them the figure would
depend on how busy the machine is). The load average before and after is reported: figures
from a busy machine say what changed between variants, not what a path costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from bench.bench_net import _iperf, admin_config, iperf_pods
from hakube.proxy import nft
from hakube.testing.netnodes import NetCluster, NetNode, missing_prerequisites
from hakube.testing.nodeproxy import TABLE, NodeProxies
from hakube.testing.wait import wait_for

VARIANTS = ("default", "tracked", "gro")


def ksoftirqd_seconds() -> float:
    """CPU seconds the ksoftirqd threads have used (user + system)."""
    total = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if not comm.read_text().startswith("ksoftirqd/"):
                continue
            fields = (comm.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(target: tuple[list[str], list[str], str], duration: float) -> tuple[float, float]:
    """(bits/s, CPU seconds per GB including ksoftirqd's) of one iperf3 run."""
    before = ksoftirqd_seconds()
    bps, cpu_per_gb = _iperf(*target, duration)
    gb = bps * duration / 8 / 1e9
    return bps, cpu_per_gb + (ksoftirqd_seconds() - before) / gb


def pod_veths(node: NetNode) -> list[str]:
    """The node ends of the pod veths (the CNI plugin names them ``veth…``)."""
    out = node.run(["ip", "-o", "link", "show", "type", "veth"]).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith("veth")]


def variant_actions(c: NetCluster, cidr: str) -> dict[str, tuple[Callable[[], None], ...]]:
    """Per variant: (apply, undo), each acting on every node."""
    (_, _, (rule,)), _ = nft.untracked_chains(cidr)
    chain = f"ip {TABLE} {nft.RAW_CHAIN}"

    def each(argv: Callable[[NetNode], list[list[str]]]) -> Callable[[], None]:
        def act() -> None:
            for node in c.nodes.values():
                for cmd in argv(node):
                    node.run(cmd)

        return act

    def gro(state: str) -> Callable[[], None]:
        return each(lambda n: [["ethtool", "-K", v, "gro", state] for v in pod_veths(n)])

    return {
        "default": (lambda: None, lambda: None),
        "tracked": (
            each(lambda n: [["nft", "flush", "chain", *chain.split()]]),
            each(lambda n: [["nft", "add", "rule", *chain.split(), rule]]),
        ),
        "gro": (gro("on"), gro("off")),
    }


def run(duration: float, rounds: int, variants: list[str]) -> dict[str, object]:
    cidr = "10.244.0.0/16"
    with NetCluster(nodes=2) as c:
        n1, n2 = c.nodes["n1"], c.nodes["n2"]
        proxies = NodeProxies(c, cluster_cidr=cidr)
        proxies.start_all()
        listing = ["nft", "list", "table", "ip", TABLE]
        for node in (n1, n2):
            wait_for(
                lambda node=node: nft.RAW_CHAIN in node.run(listing, check=False).stdout,
                30,
                f"the proxy's table on {node.name}",
                0.2,
            )
        pod_ip, into_pod = iperf_pods(c)
        actions = variant_actions(c, cidr)
        paths = {
            "node": (n2.argv([]), n1.argv([]), n2.ip),
            "pod": (into_pod["n2"], into_pod["n1"], pod_ip),
        }
        load = [os.getloadavg()[0]]
        rows: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for i in range(rounds):
            for v in variants if i % 2 == 0 else variants[::-1]:
                apply, undo = actions[v]
                apply()
                try:
                    order = ["node", "pod"] if i % 2 == 0 else ["pod", "node"]
                    got = {p: measure(paths[p], duration) for p in order}
                finally:
                    undo()
                (nb, nc), (pb, pc) = got["node"], got["pod"]
                rows[v].append({"node_bps": nb, "pod_bps": pb, "node_cpu": nc, "pod_cpu": pc})
        load.append(os.getloadavg()[0])
        proxies.close()
    out: dict[str, object] = {"duration_s": duration, "rounds": rounds, "loadavg": load}
    for v, rs in rows.items():
        out[v] = {
            "node_gbit_s": round(statistics.median(r["node_bps"] for r in rs) / 1e9, 3),
            "pod_gbit_s": round(statistics.median(r["pod_bps"] for r in rs) / 1e9, 3),
            "cost": round(statistics.median(1 - r["pod_bps"] / r["node_bps"] for r in rs), 4),
            "node_cpu_s_per_gb": round(statistics.median(r["node_cpu"] for r in rs), 4),
            "pod_cpu_s_per_gb": round(statistics.median(r["pod_cpu"] for r in rs), 4),
            "cpu_cost": round(statistics.median(1 - r["node_cpu"] / r["pod_cpu"] for r in rs), 4),
            "rounds": rs,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_net_ab", description=__doc__)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per iperf3 run")
    p.add_argument("--rounds", type=int, default=6, help="paired rounds per variant")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)}",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = p.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        print(f"bench_net_ab: --variants: unknown {bad}; use {VARIANTS}", file=sys.stderr)
        return 2
    needed = {"iperf3": "iperf3", "ethtool": "ethtool" if "gro" in variants else ""}
    missing = missing_prerequisites() + [
        t for t, want in needed.items() if want and shutil.which(t) is None
    ]
    if missing:
        print("bench_net_ab: missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    with admin_config():
        result = run(args.duration, args.rounds, variants)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"load average {result['loadavg']}, {args.rounds} rounds of {args.duration} s")
    for v in variants:
        r = result[v]
        assert isinstance(r, dict)
        print(
            f"{v:8s} node {r['node_gbit_s']} Gbit/s, pod {r['pod_gbit_s']} Gbit/s, cost "
            f"{r['cost']:.1%}; CPU/GB node {r['node_cpu_s_per_gb']} s, pod "
            f"{r['pod_cpu_s_per_gb']} s, cpu_cost {r['cpu_cost']:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
