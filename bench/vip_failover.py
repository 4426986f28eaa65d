"""How fast the VIP moves: keepalived on three netns hosts, repeated failovers, median and max.

    python3 bench/vip_failover.py [--runs 5] [--advert-int 0.5 1] [--masters]

Without ``--masters`` each host's check asks a stand-in /readyz, so only keepalived is timed:
a clean stop (SIGTERM), SIGKILL of the holder's keepalived, and the holder's /readyz turning
503. With ``--masters`` three real ``hakube master`` processes back the VIP, a client in a fourth
namespace writes through the VIP all along (hakube.testing.netprobe), and each run either
SIGKILLs everything on the holder's host and cuts its link, or only cuts the link; it times the
survivors' new leader, the VIP move, and the first acknowledged write through the VIP, and at
the end checks that no acknowledged write was lost.

Needs root and keepalived; all traffic stays inside the namespaces it creates.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time
from collections.abc import Callable
from functools import partial

from hakube.testing import netmasters
from hakube.testing.netns import Host, Network
from hakube.testing.netprobe import Probe
from hakube.testing.vipcluster import VipCluster, measure_until, start_readyz_stub
from hakube.vip import VipSettings

VIP = "192.0.2.100"
STUB_PORT = 8080
# Measured on this project's machines before hakube rendered the config (DESIGN.md).
REFERENCE = {"SIGTERM of keepalived": "~0.65 s", "SIGKILL of keepalived": "~3.1 s at advert 1 s"}


def build(net: Network, advert: float, masters: bool) -> tuple[VipCluster, list[Host], Host]:
    hosts = [net.add_host(f"m{i}", f"192.0.2.{10 + i}/24") for i in (1, 2, 3)]
    client = net.add_host("client", "192.0.2.50/24")
    if masters:
        for host in hosts:
            netmasters.start_master(host, hosts)
        measure_until(lambda: all(netmasters.is_ready(h) for h in hosts), 60, "ready masters")
        url = netmasters.READYZ_URL
    else:
        for host in hosts:
            start_readyz_stub(
                host, port=STUB_PORT, unready_file=net.workdir / f"unready-{host.name}"
            )
        url = f"http://127.0.0.1:{STUB_PORT}/readyz"
    base = VipSettings(
        vip=VIP, interface="eth0", interface_address="", peers=(), readyz_url="", advert_int=advert
    )
    vc = VipCluster(net, hosts, vip=VIP, readyz_url=lambda h: url, base=base)
    vc.start()
    vc.wait_for_single_holder(30)
    return vc, hosts, client


def settled(vc: VipCluster, holder: str) -> None:
    """Wait until every other host has rejoined as BACKUP since its last start or fault."""

    def backup(name: str) -> bool:
        log = vc.log_text(name)
        tail = log.split("Starting Keepalived")[-1].split("Entering FAULT STATE")[-1]
        return "Entering BACKUP STATE" in tail

    measure_until(lambda: all(backup(n) for n in vc.members if n != holder), 30, "BACKUPs")


def only(vc: VipCluster, name: str) -> Callable[[], bool]:
    """A condition: ``name`` and no other host holds the VIP."""
    return lambda: vc.holders() == [name]


def keepalived_runs(net: Network, vc: VipCluster, runs: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    holder = vc.holders()[0]

    def record(name: str, fail: Callable[[str], object], restore: Callable[[str], object]) -> None:
        nonlocal holder
        for _ in range(runs):
            settled(vc, holder)
            old = holder
            at = time.monotonic()
            fail(old)
            others = [n for n in vc.members if n != old]
            holder, took = vc.wait_for_single_holder(30, among=others, since=at)
            results.setdefault(name, []).append(took)
            restore(old)
            measure_until(only(vc, holder), 30, "stale VIP gone")

    def flip(name: str) -> None:
        (net.workdir / f"unready-{name}").touch()

    def unflip(name: str) -> None:
        (net.workdir / f"unready-{name}").unlink()

    record("SIGTERM of keepalived", lambda n: vc.kill(n, signal.SIGTERM), vc.start)
    record("SIGKILL of keepalived", lambda n: vc.kill(n, signal.SIGKILL), vc.start)
    record("/readyz 503", flip, unflip)
    return results


def master_runs(
    vc: VipCluster, hosts: list[Host], client: Host, runs: int
) -> dict[str, list[float]]:
    """Scenarios 1 (host crash) and 2 (holder cut off), each ``runs`` times, with a probe
    writing through the VIP all along: (a) a survivor reports a leader among the survivors,
    (b) one survivor holds the VIP, (c) the first write sent after the failure is acknowledged.
    Every acknowledged write is checked to be present at the end."""
    by_name = {h.name: h for h in hosts}
    results: dict[str, list[float]] = {}
    probe = Probe(client, VIP, {h.name: h.ip for h in hosts}, interval=0.02)
    try:
        measure_until(lambda: probe.first_write_after(0) is not None, 30, "a probe write")
        for scenario in ("host crash", "holder cut off"):
            for _ in range(runs):
                old = vc.holders()[0]
                settled(vc, old)
                others = [n for n in vc.members if n != old]
                at = time.monotonic()
                if scenario == "host crash":
                    by_name[old].kill_all()
                by_name[old].cut("drop")
                down = time.monotonic()
                new, took = vc.wait_for_single_holder(30, among=others, since=at)
                measure_until(partial(probe.first_write_after, down), 30, "a write through the VIP")
                wrote = probe.first_write_after(down)
                elected = probe.leader_elected_after(at, others)
                assert wrote is not None
                results.setdefault(f"{scenario}: (b) VIP moved", []).append(took)
                results.setdefault(f"{scenario}: (c) write via VIP", []).append(wrote - at)
                if elected is not None:
                    results.setdefault(f"{scenario}: (a) leader seen", []).append(elected - at)
                by_name[old].heal()
                if scenario == "host crash":
                    netmasters.start_master(by_name[old], hosts)
                    vc.start(old)
                try:
                    measure_until(partial(netmasters.is_ready, by_name[old]), 60, f"{old} ready")
                except TimeoutError as exc:
                    statuses = {h.name: netmasters.status_via(client, h.ip) for h in hosts}
                    raise TimeoutError(f"{exc} after {scenario}; status: {statuses}") from exc
                vc.wait_for_single_holder(30)
        lost = probe.lost()
        print(f"{len(probe.acked())} writes acknowledged through the VIP, {len(lost)} lost")
        if lost:
            raise SystemExit(f"acknowledged writes lost: {lost[:10]}")
    finally:
        probe.stop()
    return dict(sorted(results.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--advert-int", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--masters", action="store_true", help="real masters behind the VIP")
    args = ap.parse_args()
    print(f"{'scenario':38} {'advert':>7} {'runs':>4} {'median':>8} {'max':>8}  reference")
    for advert in args.advert_int:
        with Network() as net:
            vc, hosts, client = build(net, advert, args.masters)
            if args.masters:
                results = master_runs(vc, hosts, client, args.runs)
            else:
                results = keepalived_runs(net, vc, args.runs)
        for name, times in results.items():
            ref = REFERENCE.get(name, "")
            print(
                f"{name:38} {advert:6.2f}s {len(times):4} {statistics.median(times):7.2f}s "
                f"{max(times):7.2f}s  {ref}"
            )


if __name__ == "__main__":
    main()
