"""How fast the VIP moves: keepalived on three netns hosts, repeated failovers, median and max.

    python3 bench/vip_failover.py [--runs 5] [--advert-int 0.5 1] [--masters]

Without ``--masters`` each host's check asks a stand-in /readyz, so only keepalived is timed:
a clean stop (SIGTERM), SIGKILL of the holder's keepalived, and the holder's /readyz turning
503. With ``--masters`` three real ``hakube master`` processes back the VIP and each run
SIGKILLs everything on the holder's host and cuts its link, timing both the VIP move and the
moment a client in a fourth namespace is served by a ready master through the VIP.

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
    by_name = {h.name: h for h in hosts}
    moved: list[float] = []
    served: list[float] = []
    for _ in range(runs):
        old = vc.holders()[0]
        settled(vc, old)
        at = time.monotonic()
        by_name[old].kill_all()
        by_name[old].cut("drop")
        others = [n for n in vc.members if n != old]
        new, took = vc.wait_for_single_holder(30, among=others, since=at)

        last: list[netmasters.Status | None] = [None]

        def ok(new: str = new, last: list[netmasters.Status | None] = last) -> bool:
            st = last[0] = netmasters.status_via(client, VIP, timeout=1.0)
            return st is not None and st.name == new and st.ready

        try:
            served_after = measure_until(ok, 30, f"a ready {new} through the VIP")
        except TimeoutError as exc:
            ready = {h.name: netmasters.is_ready(h) for h in hosts if h.name != old}
            raise TimeoutError(f"{exc}; last answer {last[0]}; /readyz {ready}") from exc
        moved.append(took)
        served.append(took + served_after)
        by_name[old].heal()
        netmasters.start_master(by_name[old], hosts)
        measure_until(partial(netmasters.is_ready, by_name[old]), 60, f"{old} ready again")
        vc.start(old)
        measure_until(only(vc, new), 30, "stale VIP gone")
    return {"host crash: VIP moved": moved, "host crash: client served, ready": served}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--advert-int", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--masters", action="store_true", help="real masters behind the VIP")
    args = ap.parse_args()
    print(f"{'scenario':38} {'advert':>7} {'median':>8} {'max':>8}  reference")
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
                f"{name:38} {advert:6.2f}s {statistics.median(times):7.2f}s "
                f"{max(times):7.2f}s  {ref}"
            )


if __name__ == "__main__":
    main()
