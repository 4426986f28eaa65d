"""Day-2 scenarios behind the VIP, in network namespaces, with a client that writes only through
the VIP: restarting all three masters at once (scenario 3), growing to five masters and
shrinking back (scenario 4), and quorum loss followed by force-new-cluster on the survivor and
two fresh masters (scenario 5). Each checks that no acknowledged write is lost and that exactly
one master holds the VIP afterwards. keepalived follows every membership change as the runbook
says (docs/operations.md, "The VIP when members change")."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.testing import netmasters
from hakube.testing.netns import Host, Network
from hakube.testing.netprobe import Probe
from hakube.testing.vipcluster import VipCluster, measure_until
from hakube.vip import VipSettings
from tests.vip.test_vip_masters import VIP, Rig

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]
POLL = 0.3
"""Seconds between polls that start a process in a namespace (each costs a Python start-up)."""


@pytest.fixture
def rig(net: Network, keepalived_available: None) -> Iterator[Rig]:
    """Three masters with keepalived, as in test_vip_masters, but with a check that tolerates
    a loaded machine (these scenarios start many processes at once): 2 s interval, 1.8 s
    timeout, three failures before the VIP is given up."""
    hosts = {f"m{i}": net.add_host(f"m{i}", f"192.0.2.{10 + i}/24") for i in (1, 2, 3)}
    client = net.add_host("client", "192.0.2.50/24")
    for host in hosts.values():
        netmasters.start_master(host, list(hosts.values()))
    measure_until(
        lambda: all(netmasters.is_ready(h) for h in hosts.values()), 90, "three masters", POLL
    )
    base = VipSettings(
        vip=VIP, interface="eth0", interface_address="", peers=(), readyz_url="",
        check_interval=2, check_timeout=1.8, check_fall=3,
    )  # fmt: skip
    vc = VipCluster(net, hosts.values(), vip=VIP, readyz_url=lambda h: netmasters.READYZ_URL,
                    base=base)  # fmt: skip
    vc.start()
    holder, _ = vc.wait_for_single_holder(60)
    r = Rig(net, hosts, client, vc, holder, Probe(client, VIP))
    try:
        r.wait_served_ready([holder], 30)
        measure_until(lambda: len(r.probe.acked()) > 30, 60, "writes through the VIP", POLL)
        yield r
    finally:
        r.probe.stop()


def kill_master(host: Host) -> None:
    """SIGKILL the master process(es) on ``host``, leaving keepalived running."""
    for pid in netmasters.master_pids(host):
        os.kill(pid, signal.SIGKILL)
    host.network._reap()


def members_via(rig: Rig, servers: str) -> dict[str, Any]:
    """``hakube members list -o json``, run in the client namespace."""
    listed = netmasters.hakube_in(rig.client, "members", "list", "-o", "json", "--server", servers)
    assert listed.returncode == 0, listed.stderr
    return dict(json.loads(listed.stdout))


def voters_via(rig: Rig, servers: str) -> list[str]:
    return sorted(m["name"] for m in members_via(rig, servers)["members"] if m["voter"])


def wait_more_writes(rig: Rig, more: int, what: str) -> None:
    n = len(rig.probe.acked())
    measure_until(lambda: len(rig.probe.acked()) >= n + more, 60, what, POLL)


def assert_none_lost(rig: Rig, *via: str) -> list[str]:
    """Stop writing; assert every acknowledged write is listed through each of ``via`` (default
    the VIP); returns the acknowledged names."""
    acked = rig.probe.finish()
    assert len(acked) > 30
    for address in via or (VIP,):
        lost = rig.probe.lost(via=address)
        assert not lost, f"{len(lost)} acknowledged writes missing via {address}: {lost[:5]}"
    return acked


def add_member(rig: Rig, host: Host, servers: str) -> None:
    """``hakube members add`` for the master on ``host`` (already started), run from the client
    namespace through ``servers``; then wait until that master is ready."""
    added = netmasters.hakube_in(
        rig.client, "members", "add", host.name,
        "--raft", f"{host.ip}:{netmasters.RAFT_PORT}", "--api", f"{host.ip}:{netmasters.API_PORT}",
        "--server", servers,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    measure_until(lambda: netmasters.is_ready(host), 60, f"{host.name} ready", POLL)


def test_restarting_all_three_masters_at_once_loses_no_acknowledged_write(
    rig: Rig,
) -> None:
    hosts = list(rig.hosts.values())
    at = time.monotonic()
    for host in hosts:
        kill_master(host)
    for host in hosts:
        netmasters.start_master(host, hosts)
    measure_until(
        lambda: all(netmasters.is_ready(h) for h in hosts), 60, "three ready masters", POLL
    )
    ready = time.monotonic() - at
    by, served = rig.wait_served_ready(list(rig.hosts), 30)
    wait_more_writes(rig, 20, "writes to resume")
    acked = assert_none_lost(rig)
    holder, _ = rig.vc.wait_for_single_holder(30)
    print(
        f"restart of all three masters: all ready {ready:.2f} s after the kill, a ready master "
        f"({by}) served through the VIP {served:.2f} s later; {len(acked)} acknowledged "
        f"writes, none lost; VIP on {holder}"
    )


def test_quorum_loss_then_force_new_cluster_then_two_fresh_masters_keeps_every_write(
    rig: Rig,
) -> None:
    survivor = rig.hosts[rig.holder]
    for host in rig.hosts.values():
        if host is not survivor:  # gone for good: crashed and unreachable
            host.kill_all()
            host.cut("drop")
    measure_until(
        lambda: not netmasters.is_ready(survivor), 30, "the survivor to lose quorum", POLL
    )
    measure_until(lambda: not rig.vc.holders(), 30, "the VIP to be released", POLL)

    at = time.monotonic()
    kill_master(survivor)
    netmasters.start_master(survivor, [survivor], ["--force-new-cluster"])
    measure_until(lambda: netmasters.is_ready(survivor), 60, "the survivor alone to be ready", POLL)
    by, served = rig.wait_served_ready([survivor.name], 30)
    recovered = time.monotonic() - at

    # The operator lists the survivor beside the VIP: on this loaded 2-core machine keepalived's
    # sub-second check can time out and drop the VIP for a moment.
    operator_servers = f"{VIP}:6443,{survivor.ip}:6443"
    fresh: list[Host] = []
    for i in (4, 5):
        host = rig.net.add_host(f"m{i}", f"192.0.2.{10 + i}/24")
        # Started first (it waits, refused, until added); its peers are the current members.
        netmasters.start_master(host, [survivor, *fresh, host])
        measure_until(
            lambda h=host: h.run(["ss", "-ltn"], check=False).stdout.count(":7000") > 0,  # type: ignore[misc]
            30,
            f"{host.name} to listen",
            POLL,
        )
        add_member(rig, host, operator_servers)
        fresh.append(host)
        rig.vc.join(host)  # keepalived too, so that the VIP can move to it
    for name in rig.hosts:
        if name != survivor.name:
            rig.vc.leave(name)  # gone for good: out of the VRRP peers as well

    wait_more_writes(rig, 20, "writes through the VIP again")
    # The VIP can move to a fresh master: stop keepalived on the survivor (as for maintenance).
    rig.vc.kill(survivor.name, signal.SIGTERM)
    holder, _ = rig.vc.wait_for_single_holder(30, among=[h.name for h in fresh])
    wait_more_writes(rig, 20, f"writes through the VIP on {holder}")
    all_acked = assert_none_lost(rig, VIP, *(h.ip for h in fresh))
    assert [n for n, h in rig.net.hosts.items() if h.has_address(VIP)] == [holder]
    listed = netmasters.hakube_in(rig.client, "members", "list", "--server", operator_servers)
    print(
        f"quorum loss: force-new-cluster on {survivor.name} served writes via the VIP after "
        f"{recovered:.2f} s (by {by}); then m4 and m5 added; {len(all_acked)} acknowledged "
        f"writes, none lost; VIP on {holder}\n{listed.stdout}"
    )
    assert "m4" in listed.stdout and "m5" in listed.stdout


def test_growing_to_five_masters_and_shrinking_back_while_writing_through_the_vip(
    rig: Rig,
) -> None:
    """Scenario 4. Each new master gets its own host, is started with the current members as
    peers, added with ``hakube members add`` through the VIP, and joins the VRRP group once
    ready (the others' keepalived re-rendered and reloaded first). Then the VIP holder is
    removed in one step -- its master drops out of the quorum, its check fails and the VIP
    moves -- and then whichever master leads (the CLI moves leadership away first)."""
    servers = f"{VIP}:{netmasters.API_PORT}"
    hosts = dict(rig.hosts)
    at = time.monotonic()
    for i in (4, 5):
        host = rig.net.add_host(f"m{i}", f"192.0.2.{10 + i}/24")
        netmasters.start_master(host, [*hosts.values(), host])
        add_member(rig, host, servers)
        hosts[host.name] = host
        rig.vc.join(host)
        wait_more_writes(rig, 10, f"writes through the VIP with {host.name} added")
    grown = time.monotonic() - at
    grow_pause = rig.probe.longest_pause(since=at)
    assert voters_via(rig, servers) == sorted(hosts)
    holder, _ = rig.vc.wait_for_single_holder(30)
    # Joined in the right order, a newcomer hears the holder from its first moment and never
    # takes the VIP (started before the others listed it, it would within ~2 s: two holders).
    for name in ("m4", "m5"):
        assert "Entering BACKUP STATE" in rig.vc.log_text(name)
        assert "Entering MASTER STATE" not in rig.vc.log_text(name), f"{name} took the VIP"

    at = time.monotonic()
    removed = []
    for step in ("holder", "leader"):
        listed = members_via(rig, servers)
        gone = holder if step == "holder" else listed["leader"]
        if step == "leader" and holder not in rig.hosts and gone not in rig.hosts:
            gone = next(n for n in rig.hosts if n in hosts)  # shrink must drop an original
        out = netmasters.hakube_in(rig.client, "members", "remove", gone, "--server", servers)
        assert out.returncode == 0, out.stderr
        removed.append(gone)
        left = [n for n in hosts if n not in removed]
        # A removed holder's master drops out of the quorum: its check fails, the VIP moves.
        rig.vc.wait_for_single_holder(30, among=left)
        rig.vc.leave(gone)
        kill_master(hosts[gone])
        wait_more_writes(rig, 10, f"writes through the VIP after removing {gone}")
    shrunk = time.monotonic() - at
    shrink_pause = rig.probe.longest_pause(since=at)
    left = [n for n in hosts if n not in removed]
    assert voters_via(rig, servers) == sorted(left)
    assert any(n in rig.hosts for n in removed), f"no original master among {removed}"

    # A removed master cannot come back: its name is refused, and restarted on its old data
    # dir (flags naming all five) it is kept out.
    again = netmasters.hakube_in(
        rig.client, "members", "add", removed[0], "--raft", f"{hosts[removed[0]].ip}:7000",
        "--api", f"{hosts[removed[0]].ip}:{netmasters.API_PORT}", "--server", servers,
    )  # fmt: skip
    assert again.returncode == 1 and "never reused" in again.stderr, again.stderr
    stale = hosts[removed[1]]
    netmasters.start_master(stale, list(hosts.values()))

    # Membership survives a restart: a remaining master that does not hold the VIP, started
    # with flags naming all five, comes back as one of three.
    holder, _ = rig.vc.wait_for_single_holder(30, among=left)
    other = hosts[next(n for n in left if n != holder)]
    kill_master(other)
    netmasters.start_master(other, list(hosts.values()))
    measure_until(lambda: netmasters.is_ready(other), 60, f"{other.name} ready again", POLL)
    wait_more_writes(rig, 10, "writes through the VIP after the restart")

    acked = assert_none_lost(rig)
    listed = members_via(rig, servers)
    assert sorted(m["name"] for m in listed["members"] if m["voter"]) == sorted(left)
    assert sorted(listed["removed"]) == sorted(removed)
    assert not netmasters.is_ready(stale), f"removed {stale.name} is ready again"
    holder, _ = rig.vc.wait_for_single_holder(30, among=left)
    assert [n for n, h in hosts.items() if h.has_address(VIP)] == [holder]
    print(
        f"grow 3 -> 5 in {grown:.1f} s (longest pause between acknowledged writes "
        f"{grow_pause:.2f} s), shrink 5 -> 3 removing {', '.join(removed)} in {shrunk:.1f} s "
        f"(longest pause {shrink_pause:.2f} s); {len(acked)} acknowledged writes through the "
        f"VIP, none lost; VIP on {holder}"
    )
