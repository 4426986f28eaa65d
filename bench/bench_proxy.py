"""The service proxy at scale: Endpoints change -> rule live in the kernel, and full resyncs.

Run (root; nftables and iproute2): ``python -m bench.bench_proxy`` (``--help`` for knobs;
``--services 50 --changes 10`` is a smoke run of a few seconds). It starts one master, a node
namespace with ``hakube proxy`` in it (hakube.testing.proxylab) and one pod namespace, and
writes ``--services`` Services (explicit ClusterIPs, no selector) with ``--endpoints``
addresses each through the API. Then:

* **change -> live**: ``--changes`` times, one Service whose endpoints answer with a TCP reset
  (a closed port on the pod) gets Endpoints that point at an open port; the time from just
  before the API write until a connection to its ClusterIP from the node succeeds is the
  latency -- the API write, the watch, the proxy's batching (``--min-sync-interval``), the
  ruleset diff, ``nft -f`` and the kernel, end to end, observed by traffic;
* **full resync**: the proxy is restarted; the time until its first full sync has replaced the
  table (start, list, build, one ``nft -f``), its own figure for the sync, and the bare
  ``nft -f`` of the whole table (kernel only) measured separately.

Progress goes to stderr; the report (machine, settings, figures) to stdout as Markdown for
docs/benchmarks.md. The anchor is kube-proxy's nftables mode; the project's target is a p99
of at most 1 s at 1,000 Services.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import machine
from hakube.client import Client
from hakube.local.cluster import write_config
from hakube.proxy import nft
from hakube.proxy.rules import Endpoint, ServicePort, build
from hakube.testing import nsthread
from hakube.testing import pki as testpki
from hakube.testing.cluster import LocalCluster
from hakube.testing.netns import ip
from hakube.testing.proxylab import ProxyLab, pod_ip

OPEN_PORT = 8081
CLOSED_PORT = 9
SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")
FAKE_NET = ipaddress.ip_network("10.250.0.0/16")
"""Endpoints of the bulk Services: addresses nothing answers on (no traffic goes there)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def cluster_ip(i: int) -> str:
    return str(SERVICE_NET.network_address + 256 + i)


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"s{i}", "namespace": "default"},
        "spec": {"clusterIP": cluster_ip(i), "ports": [{"name": "http", "port": 80}]},
    }


def endpoints(i: int, addresses: list[str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": f"s{i}", "namespace": "default"},
        "subsets": [
            {"addresses": [{"ip": a} for a in addresses], "ports": [{"name": "http", "port": port}]}
        ],
    }


def fake_addresses(i: int, n: int) -> list[str]:
    return [str(FAKE_NET.network_address + 1 + (i * n + k) % 65000) for k in range(n)]


def connects(ip_: str) -> bool:
    """One TCP connect to ``ip_:80`` (the caller's namespace): True if accepted."""
    try:
        socket.create_connection((ip_, 80), timeout=1).close()
        return True
    except OSError:
        return False


def wait_live(node: str, ip_: str, timeout: float = 30.0) -> float:
    """Seconds until ``ip_:80`` accepts a connection from ``node`` (probing in a tight loop)."""

    def loop() -> float:
        start = time.perf_counter()
        while not connects(ip_):
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{ip_}:80 not live after {timeout}s")
        return time.perf_counter() - start

    return nsthread.call_in(node, loop)


def pod_addresses(lab: ProxyLab, n: int) -> list[str]:
    """``n`` addresses on pod 1 (its own plus extra ones), all served by one TCP listener."""
    pod = lab.pods[0]
    out = [pod_ip(1)]
    for k in range(1, n):
        extra = f"10.244.0.{100 + k}"
        ip("-n", pod, "addr", "add", f"{extra}/24", "dev", "eth0")
        out.append(extra)
    return out


def listener(netns: str) -> socket.socket:
    """Accept (and drop) connections on 0.0.0.0:OPEN_PORT inside ``netns``."""
    sock = nsthread.call_in(netns, socket.create_server, ("0.0.0.0", OPEN_PORT), backlog=512)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def run(args: argparse.Namespace, root: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        LocalCluster(os.path.join(root, "masters"), 1) as cluster,
        Client(cluster.endpoints(), timeout=30) as client,
        ProxyLab(os.path.join(root, "lab"), pods=1) as lab,
    ):
        conf = write_config(
            os.path.join(root, "proxy.conf"), testpki.shared(), cluster.endpoints(), user="proxy"
        )
        env = {"HAKUBE_CONFIG": conf}
        extra = ["--min-sync-interval", str(args.min_sync_interval)]
        pod_ips = pod_addresses(lab, args.endpoints)
        server = listener(lab.pods[0])
        n, changes = args.services, min(args.changes, args.services)
        log(f"writing {n} Services x {args.endpoints} endpoints through the API")
        t0 = time.perf_counter()

        def write(i: int) -> None:
            client.apply(service(i))
            if i < changes:
                client.apply(endpoints(i, pod_ips, CLOSED_PORT))
            else:
                client.apply(endpoints(i, fake_addresses(i, args.endpoints), OPEN_PORT))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(n)))
        out["write_s"] = time.perf_counter() - t0
        log(f"written in {out['write_s']:.1f}s; starting the proxy")
        t0 = time.perf_counter()
        lab.start_proxy(cluster.endpoints(), *extra, env=env)
        wait_full(lab, 1, timeout=300)
        out["first_sync_s"] = time.perf_counter() - t0
        log(f"first full sync after {out['first_sync_s']:.2f}s; {changes} endpoint changes")
        latencies = []
        for i in range(changes):
            time.sleep(args.gap)
            t0 = time.perf_counter()
            client.apply(endpoints(i, pod_ips, OPEN_PORT))
            wait_live(lab.node, cluster_ip(i))
            latencies.append(time.perf_counter() - t0)
        out["latencies"] = latencies
        log("restarting the proxy for a full resync")
        lab.kill_proxy()
        t0 = time.perf_counter()
        lab.start_proxy(cluster.endpoints(), *extra, env=env)
        wait_full(lab, 1, timeout=300)
        out["restart_sync_s"] = time.perf_counter() - t0
        text = lab.metrics()
        out["proxy_full_s"] = metric(text, 'hakube_proxy_sync_duration_seconds_sum{mode="full"}')
        out["rules"] = metric(text, "hakube_proxy_rules")
        out["service_ports"] = metric(text, "hakube_proxy_service_ports")
        out["nft_full_s"] = bare_nft_full(lab.node, n, args.endpoints)
        server.close()
    return out


def wait_full(lab: ProxyLab, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while lab.full_syncs() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no full sync within {timeout}s:\n{lab.log()}")
        time.sleep(0.05)


def bare_nft_full(node: str, services: int, eps: int) -> float:
    """Seconds for one ``nft -f`` replacing a table of the same size (kernel and nft only),
    in a scratch table of the node's namespace."""
    ports = [
        ServicePort(
            "default",
            f"s{i}",
            "http",
            "tcp",
            cluster_ip(i),
            80,
            endpoints=tuple(Endpoint(a, OPEN_PORT) for a in fake_addresses(i, eps)),
        )
        for i in range(services)
    ]
    text = nft.full("hakube-bench-scratch", build(ports))
    t0 = time.perf_counter()
    nsthread.call_in(node, nft.apply, text)
    took = time.perf_counter() - t0
    subprocess.run(
        ["ip", "netns", "exec", node, "nft", "delete", "table", "ip", "hakube-bench-scratch"],
        check=False,
    )
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000, help="Services programmed (1000)")
    p.add_argument("--endpoints", type=int, default=10, help="endpoints per Service (10)")
    p.add_argument("--changes", type=int, default=100, help="Endpoints changes timed (100)")
    p.add_argument("--gap", type=float, default=0.2, help="seconds between changes (0.2)")
    p.add_argument(
        "--min-sync-interval", type=float, default=0.1, help="the proxy's batching (0.1 s)"
    )
    p.add_argument("--data-root", default="", help="where the master keeps its data")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_proxy: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    if not 1 <= args.endpoints <= 150 or args.services < 1 or args.services > 60000:
        print("bench_proxy: --endpoints 1..150, --services 1..60000", file=sys.stderr)
        return 2
    root = args.data_root or tempfile.mkdtemp(prefix="bench-proxy-")
    # The admin's credentials (the test CA's) for this process's client.
    os.environ["HAKUBE_CONFIG"] = write_config(
        os.path.join(root, "admin.conf"), testpki.shared(), []
    )
    foreign = machine.foreign_cpu()
    r = run(args, root)
    lat = r["latencies"]
    print("# Service proxy: Endpoints change -> rule live; full resync\n")
    for k, v in machine.describe().items():
        print(f"- {k}: {v}")
    print(f"- foreign CPU before the run: {foreign:.2f} cores")
    print(
        f"- {args.services} Services x {args.endpoints} endpoints ({r['rules']:.0f} rules in "
        f"per-service chains), 1 master, proxy --min-sync-interval {args.min_sync_interval}s\n"
    )
    print("| figure | value |")
    print("|---|---|")
    if lat:
        print(f"| change -> live p50 (n={len(lat)}) | {statistics.median(lat) * 1000:.0f} ms |")
        print(f"| change -> live p99 | {pct(lat, 0.99) * 1000:.0f} ms |")
        print(f"| change -> live max | {max(lat) * 1000:.0f} ms |")
    print(f"| proxy start -> first full sync in the kernel | {r['first_sync_s']:.2f} s |")
    print(f"| proxy restart -> full resync in the kernel | {r['restart_sync_s']:.2f} s |")
    print(f"| the proxy's own full-sync time (build + nft -f) | {r['proxy_full_s']:.2f} s |")
    print(f"| bare `nft -f` of the whole table | {r['nft_full_s']:.2f} s |")
    print(f"| API writes of the Services and Endpoints | {r['write_s']:.1f} s |")
    print("\nTarget: change -> live p99 <= 1 s at 1,000 Services (anchor: kube-proxy nftables).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
