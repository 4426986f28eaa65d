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

Variants (the proxies run with ``--untrack-pod-traffic``, so that every variant can be made
from one table):

* ``untracked``: pod-to-pod TCP/UDP untracked (the proxy's ``raw-prerouting`` chain, what
  ``--untrack-pod-traffic`` gives);
* ``tracked``: that chain's rule removed for the round -- every packet through conntrack and
  the NAT hooks, as with the proxy's default;
* ``gro``: ``untracked`` plus GRO on the node ends of the pod veths (``ethtool -K … gro
  on``; veths come with it off), which makes the veth deliver by NAPI;
* ``bpf``: ``untracked`` plus the prototype eBPF fast path of :mod:`bench.bpfpath` on both
  nodes (tc programs on the uplink and the pod veths that skip the node's IP stack for
  pod-to-pod packets) -- what a datapath like Cilium's host routing would save; not a hakube
  feature (it would bypass the un-DNAT of translated connections), a measurement of the
  design (hakube's ``--fast-path-device`` is its uplink half: ``bench.bench_net
  --fast-path``);
* ``bare``: the proxy stopped and its table deleted for the round (a node without
  ``hakube proxy``: no netfilter hook in the node namespaces, so no conntrack either) -- the
  floor of what the routed pod path costs, one veth pair and one forwarding hop per node.

Every run is taken as :mod:`bench.netpath` describes (cluster paused, iperf3's ends pinned,
the whole machine's CPU per GB); the report gives each variant's cost over all rounds with a
95 % interval from resampling rounds. Runs of 2 s vary by about ±15 % on a shared VM host, so
a few points between variants need dozens of rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from bench import bpfpath
from bench.bench_net import admin_config, iperf_pods, pin_arg, report_line, summarise
from bench.netpath import Sample, iperf
from hakube.proxy import nft
from hakube.testing.netnodes import NetCluster, NetNode, missing_prerequisites
from hakube.testing.nodeproxy import TABLE, UPLINK, NodeProxies
from hakube.testing.wait import wait_for

VARIANTS = ("untracked", "tracked", "gro", "bare", "bpf")


def pod_veths(node: NetNode) -> list[str]:
    """The node ends of the pod veths (the CNI plugin names them ``veth…``)."""
    out = node.run(["ip", "-o", "link", "show", "type", "veth"]).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith("veth")]


def table_ready(node: NetNode) -> bool:
    listing = ["nft", "list", "table", "ip", TABLE]
    return nft.RAW_CHAIN in node.run(listing, check=False).stdout


def bpf_actions(c: NetCluster, cidr: str, pins: str) -> tuple[Callable[[], None], ...]:
    """(attach, detach) of the prototype fast path (bench.bpfpath) on every node; programs
    pinned under ``pins`` (a bpffs)."""

    def attach() -> None:
        for node in c.nodes.values():
            local = c.client.nodes.get(node.name).spec.pod_cidr
            progs = {UPLINK: bpfpath.uplink_program(local)}
            progs.update((v, bpfpath.pod_program(cidr, local)) for v in pod_veths(node))
            for dev, code in progs.items():
                path = os.path.join(pins, f"{node.name}-{dev}")
                bpfpath.load_and_pin(code, path)
                node.run(["tc", "qdisc", "add", "dev", dev, "clsact"])
                node.run(
                    ["tc", "filter", "add", "dev", dev, "ingress", "bpf", "da", "pinned", path]
                )

    def detach() -> None:
        for node in c.nodes.values():
            for dev in [UPLINK, *pod_veths(node)]:
                node.run(["tc", "qdisc", "del", "dev", dev, "clsact"], check=False)
        for name in os.listdir(pins):
            if name.startswith(tuple(c.nodes)):  # ours; the kernel's *.debug files stay
                os.unlink(os.path.join(pins, name))

    return attach, detach


def variant_actions(
    c: NetCluster, cidr: str, proxies: NodeProxies, pins: str
) -> dict[str, tuple[Callable[[], None], ...]]:
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

    def bare() -> None:
        for node in c.nodes.values():
            proxies.kill(node)
            node.run(["nft", "delete", "table", "ip", TABLE])

    def proxied() -> None:
        proxies.start_all()
        for node in c.nodes.values():
            wait_for(lambda node=node: table_ready(node), 30, f"the proxy's table on {node.name}")

    return {
        "untracked": (lambda: None, lambda: None),
        "tracked": (
            each(lambda n: [["nft", "flush", "chain", *chain.split()]]),
            each(lambda n: [["nft", "add", "rule", *chain.split(), rule]]),
        ),
        "gro": (gro("on"), gro("off")),
        "bare": (bare, proxied),
        "bpf": bpf_actions(c, cidr, pins),
    }


def run(
    duration: float,
    rounds: int,
    variants: list[str],
    *,
    pause: bool = True,
    pin: tuple[int, int] | None = (0, 1),
    streams: int = 1,
) -> dict[str, object]:
    cidr = "10.244.0.0/16"
    with NetCluster(nodes=2) as c:
        n1, n2 = c.nodes["n1"], c.nodes["n2"]
        proxies = NodeProxies(c, cluster_cidr=cidr, untrack=True)
        proxies.start_all()
        for node in (n1, n2):
            wait_for(lambda node=node: table_ready(node), 30, f"the proxy's table on {node.name}")
        pod_ip, into_pod = iperf_pods(c)
        pins = str(c.workdir / "bpffs")
        os.makedirs(pins)
        subprocess.run(["mount", "-t", "bpf", "bpf", pins], check=True)
        try:
            actions = variant_actions(c, cidr, proxies, pins)
            paths = {
                "node": (n2.argv([]), n1.argv([]), n2.ip),
                "pod": (into_pod["n2"], into_pod["n1"], pod_ip),
            }
            load = [os.getloadavg()[0]]
            got: dict[str, dict[str, list[Sample]]] = {v: {"node": [], "pod": []} for v in variants}
            for i in range(rounds):
                for v in variants if i % 2 == 0 else variants[::-1]:
                    apply, undo = actions[v]
                    apply()
                    try:
                        for p in ["node", "pod"] if i % 2 == 0 else ["pod", "node"]:
                            got[v][p].append(
                                iperf(*paths[p], duration, pin=pin, pause=pause, streams=streams)
                            )
                    finally:
                        undo()
            load.append(os.getloadavg()[0])
        finally:
            subprocess.run(["umount", pins], check=False)
        proxies.close()
    out: dict[str, object] = {
        "duration_s": duration,
        "rounds": rounds,
        "loadavg": load,
        "paused": pause,
        "pin": list(pin) if pin else None,
        "streams": streams,
    }
    for v, samples in got.items():
        out[v] = summarise(samples, "node")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_net_ab", description=__doc__)
    p.add_argument("--duration", type=float, default=2.0, help="seconds per iperf3 run")
    p.add_argument("--rounds", type=int, default=30, help="paired rounds per variant")
    p.add_argument(
        "--no-pause", action="store_true", help="leave the cluster running during the runs"
    )
    p.add_argument(
        "--pin", type=pin_arg, default=(0, 1), help="iperf3 client,server CPUs, or 'none'"
    )
    p.add_argument("--streams", type=int, default=1, help="parallel TCP streams per run")
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
        result = run(
            args.duration,
            args.rounds,
            variants,
            pause=not args.no_pause,
            pin=args.pin,
            streams=args.streams,
        )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"load average {result['loadavg']}, {args.rounds} rounds of {args.duration} s, "
        f"paused: {not args.no_pause}, pin: {args.pin}, streams: {args.streams}"
    )
    for v in variants:
        r = result[v]
        assert isinstance(r, dict)
        node, pod = r["node"], r["pod"]
        print(
            f"{v:8s} node {node['gbit_s']} Gbit/s, CPU/GB {node['cpu_s_per_gb']} s; "
            + report_line("pod", pod)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
