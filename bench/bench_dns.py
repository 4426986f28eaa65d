"""Cluster DNS queries/s and latency: ``hakube dns`` against dnsmasq, same names, same run.

Run (on a quiet machine; needs Debian's ``dnsperf`` and ``dnsmasq``, see
scripts/install/dns.sh): ``python -m bench.bench_dns`` (``--help`` for knobs). It starts a
one-master cluster, creates ``--services`` Services with ClusterIPs, runs one ``hakube dns``
process on loopback (its own identity, as ``hakube up`` does) and one ``dnsmasq`` answering the
same names from a hosts file, and drives each with ``dnsperf`` over UDP from a query file of
the A queries for those names:

1. full load (``--outstanding`` queries in flight for ``--duration`` s): queries/s, p50, p99;
2. a fixed rate (``--rate``, 1,000 q/s by default) for ``--duration`` s: p50, p99.

Latencies come from ``dnsperf -v`` (one line per answer). Progress goes to stderr; the report
(machine, foreign CPU, table, the ratio and the targets: ≥ 0.5× dnsmasq's queries/s, p99 ≤ 5 ms
at 1,000 q/s) goes to stdout as Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bench import machine
from hakube.api import convert
from hakube.local.dns import DnsAddress, LocalDns
from hakube.testing.cluster import LocalCluster
from hakube.testing.dnsmasq import Dnsmasq, free_udp_port
from hakube.testing.wait import wait_for

NS = "bench"
FIRST_IP = ipaddress.IPv4Address("10.100.0.1")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Run:
    qps: float
    p50_ms: float
    p99_ms: float
    completed: int
    lost: int
    """Queries without an answer, or answered with another rcode than NOERROR."""


def dnsperf(addr: DnsAddress, queries: str, duration: float, *, extra: list[str]) -> Run:
    """One dnsperf run; latencies from its per-answer lines (``> RCODE name type secs``)."""
    out = subprocess.run(
        [
            "dnsperf",
            "-s",
            addr.ip,
            "-p",
            str(addr.port),
            "-d",
            queries,
            "-l",
            str(duration),
            "-v",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answers = [line.split() for line in out.splitlines() if line.startswith("> ")]
    lat = sorted(float(a[-1]) for a in answers)
    errors = sum(1 for a in answers if a[1] != "NOERROR")
    stats = dict(
        (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in out.splitlines()) if v
    )
    qps = float(stats.get("Queries per second", "0"))
    completed = int(stats.get("Queries completed", "0").split()[0])
    lost = int(stats.get("Queries lost", "0").split()[0]) + errors
    if not lat:
        return Run(qps, 0.0, 0.0, completed, lost)
    return Run(
        qps,
        lat[len(lat) // 2] * 1000,
        lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        completed,
        lost,
    )


def services(n: int) -> list[tuple[str, str]]:
    return [(f"svc-{i}", str(FIRST_IP + i)) for i in range(n)]


def run(args: argparse.Namespace, root: str) -> dict[str, dict[str, Run]]:
    names = services(args.services)
    queries = os.path.join(root, "queries.txt")
    with open(queries, "w") as f:
        for name, _ in names:
            f.write(f"{name}.{NS}.svc.cluster.local A\n")
    results: dict[str, dict[str, Run]] = {}
    with LocalCluster(os.path.join(root, "cluster"), 1) as cluster, cluster.client() as client:
        log(f"creating {len(names)} Services")
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for name, ip in names:
            client.create(
                convert.from_dict(
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": name, "namespace": NS},
                        "spec": {"clusterIP": ip, "ports": [{"port": 80, "protocol": "TCP"}]},
                    }
                )
            )
        local = LocalDns(root, cluster.endpoints(), pki=cluster.pki)
        hk = DnsAddress("127.0.0.1", free_udp_port())
        peer = Dnsmasq([f"{ip} {name}.{NS}.svc.cluster.local" for name, ip in names], ttl=5)
        try:
            local.start("hakube-dns", hk, "--upstream", "none")
            peer.start()
            last = f"{names[-1][0]}.{NS}.svc.cluster.local"
            servers = {"hakube dns": hk, "dnsmasq": DnsAddress("127.0.0.1", peer.port)}
            for system, addr in servers.items():  # both answer every name before measuring
                wait_for(
                    lambda a=addr: (
                        subprocess.run(
                            ["dig", "+short", f"@{a.ip}", "-p", str(a.port), last],
                            capture_output=True,
                            text=True,
                        ).stdout.strip()
                        == names[-1][1]
                    ),
                    60,
                    f"{system} answers {last}",
                )
            for system, addr in servers.items():
                log(f"{system}: warm-up, full load, then {args.rate} q/s")
                dnsperf(addr, queries, 1, extra=["-q", "10"])
                full = dnsperf(addr, queries, args.duration, extra=["-q", str(args.outstanding)])
                fixed = dnsperf(
                    addr, queries, args.duration, extra=["-q", "100", "-Q", str(args.rate)]
                )
                results[system] = {"full": full, "fixed": fixed}
        finally:
            local.stop()
            peer.stop()
    return results


def report(args: argparse.Namespace, results: dict[str, dict[str, Run]], foreign: float) -> None:
    print("# Cluster DNS: hakube dns vs dnsmasq (dnsperf, UDP, same names, same run)\n")
    for k, v in machine.describe().items():
        print(f"- {k}: {v}")
    print(f"- foreign CPU before the run: {foreign:.2f} cores")
    print(
        f"- {args.services} Services (A queries for each, in turn); full load with "
        f"{args.outstanding} in flight; fixed rate {args.rate} q/s; {args.duration} s each\n"
    )
    print(
        "| server | q/s (full) | p50 ms | p99 ms | lost or failed | p50 ms @ rate | p99 ms @ rate |"
    )
    print("|---|---|---|---|---|---|---|")
    for system, r in results.items():
        f, q = r["full"], r["fixed"]
        print(
            f"| {system} | {f.qps:,.0f} | {f.p50_ms:.2f} | {f.p99_ms:.2f} | {f.lost} | "
            f"{q.p50_ms:.2f} | {q.p99_ms:.2f} |"
        )
    hk, peer = results["hakube dns"], results["dnsmasq"]
    ratio = hk["full"].qps / peer["full"].qps if peer["full"].qps else 0.0
    print(
        f"\nhakube dns / dnsmasq queries/s: {ratio:.2f} (target ≥ 0.5: "
        f"{'met' if ratio >= 0.5 else 'NOT met'}); p99 at {args.rate} q/s: "
        f"{hk['fixed'].p99_ms:.2f} ms (target ≤ 5 ms: "
        f"{'met' if hk['fixed'].p99_ms <= 5 else 'NOT met'})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000, help="Services in the zone (1000)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per dnsperf run (20)")
    p.add_argument("--outstanding", type=int, default=100, help="queries in flight at full load")
    p.add_argument("--rate", type=int, default=1000, help="the fixed rate, queries/s (1000)")
    p.add_argument("--data-root", default="", help="where the cluster keeps its data")
    args = p.parse_args(argv)
    for tool in ("dnsperf", "dig"):
        if shutil.which(tool) is None:
            print(f"bench_dns: {tool} is not installed (scripts/install/dns.sh)", file=sys.stderr)
            return 2
    root = args.data_root or tempfile.mkdtemp(prefix="bench-dns-")
    foreign = machine.foreign_cpu()
    results = run(args, root)
    report(args, results, foreign)
    return 0


if __name__ == "__main__":
    sys.exit(main())
