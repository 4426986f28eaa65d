"""Day-2 scenarios behind the VIP, in network namespaces, with a client that writes only through
the VIP: restarting all three masters at once (scenario 3), and quorum loss followed by
force-new-cluster on the survivor and two fresh masters (scenario 5). Each checks that no
acknowledged write is lost and that exactly one master holds the VIP afterwards."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hakube.testing import netmasters
from hakube.testing.netns import Host
from hakube.testing.netops import VipWriter, hakube_in, names_via
from hakube.testing.vipcluster import measure_until
from tests.vip.test_vip_masters import VIP, Rig, rig  # noqa: F401 - the shared fixture

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]


def kill_master(host: Host) -> None:
    """SIGKILL the master process(es) on ``host``, leaving keepalived running."""
    for pid in host.pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("python"):
            os.kill(pid, signal.SIGKILL)
    host.network._reap()


def test_restarting_all_three_masters_at_once_loses_no_acknowledged_write(
    rig: Rig,  # noqa: F811 - the fixture imported above
) -> None:
    writer = VipWriter(rig.client, VIP, "s3")
    measure_until(lambda: len(writer.acked()) > 30, 60, "writes through the VIP")
    hosts = list(rig.hosts.values())
    at = time.monotonic()
    for host in hosts:
        kill_master(host)
    for host in hosts:
        netmasters.start_master(host, hosts)
    ready = measure_until(
        lambda: all(netmasters.is_ready(h) for h in hosts), 60, "three ready masters"
    )
    by, served = rig.wait_served_ready(list(rig.hosts), 30)
    n = len(writer.acked())
    measure_until(lambda: len(writer.acked()) > n + 20, 60, "writes to resume")
    acked = writer.finish()
    stored = names_via(rig.client, VIP)
    lost = set(acked) - stored
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {sorted(lost)[:5]}"
    holder, _ = rig.vc.wait_for_single_holder(15)
    print(
        f"restart of all three masters: ready after {time.monotonic() - at - served:.2f} s "
        f"({ready:.2f} s after start), served via the VIP by {by}; {len(acked)} acknowledged "
        f"writes, none lost; VIP on {holder}"
    )


def test_quorum_loss_then_force_new_cluster_then_two_fresh_masters_keeps_every_write(
    rig: Rig,  # noqa: F811 - the fixture imported above
) -> None:
    writer = VipWriter(rig.client, VIP, "s5")
    measure_until(lambda: len(writer.acked()) > 30, 60, "writes through the VIP")
    survivor = rig.hosts[rig.holder]
    for host in rig.hosts.values():
        if host is not survivor:  # gone for good: crashed and unreachable
            host.kill_all()
            host.cut("drop")
    measure_until(lambda: not netmasters.is_ready(survivor), 30, "the survivor to lose quorum")
    measure_until(lambda: not rig.vc.holders(), 30, "the VIP to be released")
    acked = set(writer.acked())  # nothing can be acknowledged from here until recovery

    at = time.monotonic()
    kill_master(survivor)
    netmasters.start_master(survivor, [survivor], ["--force-new-cluster"])
    measure_until(lambda: netmasters.is_ready(survivor), 60, "the survivor alone to be ready")
    by, served = rig.wait_served_ready([survivor.name], 30)
    recovered = time.monotonic() - at

    fresh: list[Host] = []
    for i in (4, 5):
        host = rig.net.add_host(f"m{i}", f"192.0.2.{10 + i}/24")
        # Started first (it waits, refused, until added); its peers are the current members.
        netmasters.start_master(host, [survivor, *fresh, host])
        measure_until(
            lambda h=host: h.run(["ss", "-ltn"], check=False).stdout.count(":7000") > 0,  # type: ignore[misc]
            30,
            f"{host.name} to listen",
        )
        added = hakube_in(
            rig.client, "members", "add", host.name, "--raft", f"{host.ip}:7000",
            "--api", f"{host.ip}:6443", "--server", f"{VIP}:6443",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        measure_until(lambda h=host: netmasters.is_ready(h), 60, f"{host.name} ready")  # type: ignore[misc]
        fresh.append(host)

    n = len(writer.acked())
    measure_until(lambda: len(writer.acked()) > n + 20, 60, "writes through the VIP again")
    all_acked = writer.finish()
    for address in (VIP, *(h.ip for h in fresh)):
        stored = names_via(rig.client, address)
        lost = (acked | set(all_acked)) - stored
        assert not lost, f"{len(lost)} acknowledged writes missing on {address}"
    holder, _ = rig.vc.wait_for_single_holder(15)
    assert holder == survivor.name
    listed = hakube_in(rig.client, "members", "list", "--server", f"{VIP}:6443")
    print(
        f"quorum loss: force-new-cluster on {survivor.name} served writes via the VIP after "
        f"{recovered:.2f} s (by {by}); then m4 and m5 added; {len(all_acked)} acknowledged "
        f"writes, none lost; VIP on {holder}\n{listed.stdout}"
    )
    assert "m4" in listed.stdout and "m5" in listed.stdout
