"""Real keepalived on three netns hosts: who holds the VIP, and how fast it moves.

Each host runs keepalived with the config ``hakube keepalived render`` would write, checking a
stand-in /readyz (:mod:`hakube.testing.readyz_stub`) that the test flips through a file. A
client in a fourth namespace asks ``http://VIP:8080/`` which host answers. What is under test
is keepalived's behaviour with our settings, not a master. Times are printed (``pytest -s``);
the bounds asserted are loose, to catch a broken setting rather than to benchmark.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakube.testing.netns import Host, Network
from hakube.testing.vipcluster import VipCluster, measure_until, start_readyz_stub
from hakube.vip import VipSettings

pytestmark = pytest.mark.netns

VIP = "192.0.2.100"
PORT = 8080


@dataclass
class Rig:
    net: Network
    client: Host
    vc: VipCluster
    holder: str

    def unready_file(self, name: str) -> Path:
        return self.net.workdir / f"unready-{name}"

    def served_by(self) -> str:
        status, body = self.client.fetch(f"http://{VIP}:{PORT}/", timeout=0.5)
        return body.strip() if status == 200 else ""

    def backups_settled(self, holder: str, times: int = 1) -> bool:
        """Every other host has logged entering BACKUP at least ``times`` times."""
        return all(
            self.vc.log_text(n).count("Entering BACKUP STATE") >= times
            for n in self.vc.members
            if n != holder
        )


@pytest.fixture
def make_rig(net: Network, keepalived_available: None) -> Iterator[Callable[..., Rig]]:
    def make(advert_int: float = 0.5) -> Rig:
        masters = [net.add_host(f"m{i}", f"192.0.2.{10 + i}/24") for i in (1, 2, 3)]
        client = net.add_host("client", "192.0.2.50/24")
        for host in masters:
            start_readyz_stub(host, port=PORT, unready_file=net.workdir / f"unready-{host.name}")
        base = VipSettings(
            vip=VIP,
            interface="eth0",
            interface_address="",
            peers=(),
            readyz_url="",
            advert_int=advert_int,
        )
        vc = VipCluster(
            net, masters, vip=VIP, readyz_url=lambda h: f"http://127.0.0.1:{PORT}/readyz", base=base
        )
        vc.start()
        holder, took = vc.wait_for_single_holder(30)
        report(f"first holder {holder} after {took:.2f} s (includes keepalived start)")
        return Rig(net, client, vc, holder)

    yield make


def report(line: str) -> None:
    print(f"VIP timing: {line}")


def test_exactly_one_host_holds_the_vip_and_a_client_reaches_it(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    measure_until(lambda: rig.backups_settled(rig.holder), 15, "the others to settle as BACKUP")
    assert rig.vc.holders() == [rig.holder]
    assert rig.served_by() == rig.holder


def test_a_failing_readyz_moves_the_vip_and_it_does_not_come_back(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    old = rig.holder
    measure_until(lambda: rig.backups_settled(old), 15, "the others to settle as BACKUP")
    at = time.monotonic()
    rig.unready_file(old).touch()
    new, took = rig.vc.wait_for_single_holder(15, not_=old, since=at)
    report(f"/readyz 503 on {old}: {new} holds the VIP after {took:.2f} s")
    assert took < 8
    assert "Entering FAULT STATE" in rig.vc.log_text(old)
    measure_until(lambda: rig.served_by() == new, 5, f"the client to reach {new}")

    # Healthy again, the old holder rejoins as BACKUP and, with nopreempt, leaves the VIP be.
    rig.unready_file(old).unlink()
    measure_until(
        lambda: rig.vc.log_text(old).count("Entering BACKUP STATE") >= 2, 15, f"{old} BACKUP"
    )
    assert rig.vc.holders() == [new]


@pytest.mark.parametrize(
    "advert", [1.0, 0.5, 0.25], ids=["advert-1s", "advert-500ms", "advert-250ms"]
)
def test_sigkill_of_the_holders_keepalived_moves_the_vip(
    make_rig: Callable[..., Rig], advert: float
) -> None:
    rig = make_rig(advert_int=advert)
    old = rig.holder
    measure_until(lambda: rig.backups_settled(old), 15, "the others to settle as BACKUP")
    others = [n for n in rig.vc.members if n != old]
    at = rig.vc.kill(old, signal.SIGKILL)
    new, took = rig.vc.wait_for_single_holder(15, among=others, since=at)
    report(f"SIGKILL of keepalived, advert_int {advert} s: {new} holds after {took:.2f} s")
    assert took < 3 * advert + 4

    # A killed keepalived cannot remove the VIP: it stays on the old host until keepalived is
    # started there again, which removes it at start-up and joins as BACKUP.
    assert old in rig.vc.holders()
    rig.vc.start(old)
    measure_until(lambda: rig.vc.holders() == [new], 15, f"{old} to drop its stale VIP")
    measure_until(lambda: "Entering BACKUP STATE" in rig.vc.log_text(old), 15, f"{old} BACKUP")
    assert rig.vc.holders() == [new]


def test_a_clean_stop_hands_the_vip_over_at_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    old = rig.holder
    measure_until(lambda: rig.backups_settled(old), 15, "the others to settle as BACKUP")
    at = rig.vc.kill(old, signal.SIGTERM)
    new, took = rig.vc.wait_for_single_holder(15, not_=old, since=at)
    report(f"SIGTERM of keepalived: {new} holds after {took:.2f} s")
    assert took < 3
    assert rig.vc.holders() == [new]


def test_when_the_holder_host_dies_the_client_follows_the_vip(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    old = rig.holder
    measure_until(lambda: rig.backups_settled(old), 15, "the others to settle as BACKUP")
    assert rig.served_by() == old
    host = rig.vc.members[old].host
    at = time.monotonic()
    host.kill_all()  # every process of the host, as in a crash...
    host.cut("drop")  # ...and its address answers nobody any more
    others = [n for n in rig.vc.members if n != old]
    new, took = rig.vc.wait_for_single_holder(15, among=others, since=at)
    served = measure_until(lambda: rig.served_by() == new, 10, f"the client to reach {new}")
    report(
        f"holder host crash: {new} holds after {took:.2f} s, client served after "
        f"{took + served:.2f} s"
    )


def test_a_holder_whose_link_goes_down_gives_the_vip_away(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    old = rig.holder
    measure_until(lambda: rig.backups_settled(old), 15, "the others to settle as BACKUP")
    at = time.monotonic()
    rig.vc.members[old].host.cut("down")
    new, took = rig.vc.wait_for_single_holder(15, not_=old, since=at)
    report(f"link down on {old}: {new} holds after {took:.2f} s")
    measure_until(lambda: rig.served_by() == new, 10, f"the client to reach {new}")
