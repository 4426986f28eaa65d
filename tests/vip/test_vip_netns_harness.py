"""The netns harness: hosts reach each other, links cut and heal, teardown leaves nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hakube.testing import netns
from hakube.testing.netns import Network
from hakube.testing.vipcluster import measure_until, start_readyz_stub

pytestmark = pytest.mark.netns

SERVE = 8080


def leftovers(prefix: str) -> list[str]:
    return [n for n in netns.ip("netns", "list").split() if n.startswith(prefix)]


def test_hosts_reach_each_other_over_the_bridge(net: Network) -> None:
    a = net.add_host("a", "192.0.2.11")
    b = net.add_host("b", "192.0.2.12/24")
    start_readyz_stub(b, port=SERVE, unready_file=net.workdir / "unready-b")
    assert a.fetch(f"http://{b.ip}:{SERVE}/") == (200, "b\n")
    assert b.ipv4_addresses() == {"192.0.2.12"}


def test_a_cut_host_is_unreachable_until_healed(net: Network) -> None:
    a = net.add_host("a", "192.0.2.11")
    b = net.add_host("b", "192.0.2.12")
    start_readyz_stub(b, port=SERVE, unready_file=net.workdir / "unready-b")
    url = f"http://{b.ip}:{SERVE}/"
    for how in ("drop", "down"):
        b.cut(how)
        assert a.fetch(url, timeout=0.5)[0] == 0, f"cut {how} still reaches b"
        b.heal()
        measure_until(lambda: a.fetch(url, timeout=0.5)[0] == 200, 10, f"b back after {how}")


def test_addresses_outside_test_net_1_are_refused(net: Network) -> None:
    with pytest.raises(ValueError, match="192.0.2.0/24 only"):
        net.add_host("a", "10.0.0.1/24")
    with pytest.raises(ValueError, match="192.0.2.0/24 only"):
        net.add_host("b", "192.0.2.1/16")


def test_kill_all_ends_every_process_of_a_host_including_children(net: Network) -> None:
    a = net.add_host("a", "192.0.2.11")
    b = net.add_host("b", "192.0.2.12")
    proc = a.spawn(["sh", "-c", "sleep 600 & sleep 600 & wait"])
    keep = b.spawn(["sleep", "600"])
    measure_until(lambda: len(a.pids()) == 3, 5, "sh and two sleeps")
    assert len(a.kill_all()) == 3
    assert a.pids() == []
    assert proc.wait(5) == -9
    assert keep.poll() is None, "another host's process was killed"


def test_close_removes_namespaces_processes_and_workdir_even_after_an_error(
    netns_available: None,
) -> None:
    with pytest.raises(RuntimeError, match="boom"), Network() as network:
        host = network.add_host("a", "192.0.2.11")
        proc = host.spawn(["sleep", "600"])
        prefix, workdir = network.prefix, network.workdir
        assert len(leftovers(prefix)) == 2  # the bridge's and the host's
        raise RuntimeError("boom")
    assert leftovers(prefix) == []
    assert proc.poll() == -9
    assert not workdir.exists()
    network.close()  # idempotent


def test_a_network_left_by_a_dead_run_is_removed_by_the_next(
    netns_available: None, tmp_path: Path
) -> None:
    # A process that has exited stands for a test run killed before its cleanup ran.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f"hk{dead.pid}xdead-h0"
    netns.ip("netns", "add", stale)
    try:
        with Network():
            assert stale not in leftovers(stale)
    finally:
        netns.ip("netns", "del", stale, check=False)
