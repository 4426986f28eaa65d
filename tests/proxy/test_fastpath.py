"""The proxy's pod fast path on a kernel: its program loads and attaches, a second start
replaces it, bad set-ups are refused with one line naming the flag.

What it does to traffic -- a pod's packets skip the receiving node's netfilter, a Service
backend's replies do not -- is tested on real containerd nodes in
tests/net/test_service_proxy.py.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from hakube.proxy import bpf
from hakube.proxy.fastpath import PREF, FastPath, clsact_devices, conntrack_backends
from hakube.proxy.proxier import ProxyConfig
from hakube.testing import nsthread
from hakube.testing.netns import ip

CIDR = "10.244.0.0/16"


@pytest.fixture
def node(netns: str) -> str:
    """A network namespace with an uplink (one end of a veth pair)."""
    for cmd in (
        ["link", "add", "up0", "type", "veth", "peer", "name", "up1"],
        ["link", "set", "up0", "up"],
        ["addr", "add", "10.0.0.1/24", "dev", "up0"],
    ):
        ip("-n", netns, *cmd)
    return netns


def _filters(ns: str, dev: str) -> list[int]:
    return nsthread.call_in(ns, bpf.ingress_prefs, dev)


def test_config_refuses_a_fast_path_without_the_pod_network() -> None:
    with pytest.raises(ValueError, match="^--fast-path-device needs --cluster-cidr"):
        ProxyConfig(fast_path_device="eth0").validate()


def test_the_program_attaches_a_restart_replaces_it_and_remove_takes_it_off(node: str) -> None:
    first = FastPath("up0", CIDR)
    nsthread.call_in(node, first.start)
    assert _filters(node, "up0") == [PREF]
    second = FastPath("up0", CIDR)  # a restarted proxy: a new program and map, one filter
    nsthread.call_in(node, second.start)
    assert _filters(node, "up0") == [PREF]
    assert nsthread.call_in(node, clsact_devices) == ["up0"]
    second.add(["10.244.1.5"])
    assert bytes([10, 244, 1, 5]) in second._map  # type: ignore[operator]
    assert nsthread.call_in(node, FastPath.remove, "up0") is True
    assert _filters(node, "up0") == []
    assert nsthread.call_in(node, FastPath.remove, "up0") is False
    first.close()
    second.close()


def test_pods_behind_a_bridge_are_refused_with_the_flag_named(node: str) -> None:
    for cmd in (
        ["link", "add", "cni0", "type", "bridge"],
        ["link", "set", "cni0", "up"],
        ["addr", "add", "10.244.3.1/24", "dev", "cni0"],
    ):
        ip("-n", node, *cmd)
    with pytest.raises(ValueError, match="^--fast-path-device: pod routes go through a bridge"):
        nsthread.call_in(node, FastPath("up0", CIDR).start)
    assert _filters(node, "up0") == []


def test_conntrack_seed_reads_the_backends_of_dnated_connections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = tmp_path / "nf_conntrack"
    table.write_text(
        # DNATed: to 10.96.0.10:80, answered by 10.244.1.7 -> a backend
        "ipv4 2 tcp 6 431999 ESTABLISHED src=10.244.0.5 dst=10.96.0.10 sport=40000 dport=80 "
        "src=10.244.1.7 dst=10.244.0.5 sport=8080 dport=40000 [ASSURED] mark=0 use=1\n"
        # plain pod to pod: no translation
        "ipv4 2 tcp 6 431999 ESTABLISHED src=10.244.0.5 dst=10.244.2.2 sport=40001 dport=80 "
        "src=10.244.2.2 dst=10.244.0.5 sport=80 dport=40001 [ASSURED] mark=0 use=1\n"
    )
    assert conntrack_backends(str(table)) == {"10.244.1.7"}
    assert conntrack_backends(str(tmp_path / "missing")) == set()


def test_a_mounted_bpffs_is_used_and_left_as_found(node: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Where a bpffs is mounted (systemd's /sys/fs/bpf), the program is pinned there for the
    moment of attaching and the pin removed: nothing mounted, nothing left behind."""
    subprocess.run(["mount", "-t", "bpf", "bpf", str(tmp_path)], check=True)
    try:
        assert str(tmp_path) in bpf.bpffs_mounts()
        fast = FastPath("up0", CIDR)
        nsthread.call_in(node, fast.start)
        fast.close()
        assert _filters(node, "up0") == [PREF]
        assert not [n for n in os.listdir(tmp_path) if n.startswith("hakube-")]
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)
