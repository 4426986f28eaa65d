"""Which routes a node keeps to the others' pods (hakube.agent.routes.desired_routes), and the
CNI config the agent writes: no cluster, no root."""

from __future__ import annotations

import pytest

from hakube.agent.network import cni_config
from hakube.agent.routes import desired_routes
from hakube.agent.vxlan import gateway, vtep_mac
from hakube.api.v1 import core_pb2, meta_pb2


def node(name: str, cidr: str, ip: str) -> core_pb2.Node:
    n = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name))
    n.spec.pod_cidr = cidr
    if ip:
        n.status.addresses.add(type="InternalIP", address=ip)
    n.status.addresses.add(type="Hostname", address=name)
    return n


def test_a_node_routes_every_other_node_with_a_range_and_an_address_but_itself() -> None:
    nodes = [
        node("me", "10.244.0.0/24", "192.0.2.10"),
        node("b", "10.244.1.0/24", "192.0.2.11"),
        node("c", "10.244.2.0/24", "192.0.2.12"),
        node("no-range", "", "192.0.2.13"),
        node("no-address", "10.244.4.0/24", ""),
        node("local", "10.244.5.0/24", "127.0.0.1"),  # an agent sharing this host's network
        node("same-ip", "10.244.6.0/24", "192.0.2.10"),
        node("overlaps-mine", "10.244.0.0/23", "192.0.2.17"),
        node("v6", "fd00:10:244::/64", "192.0.2.18"),
    ]
    assert desired_routes(nodes, "me", "192.0.2.10", "10.244.0.0/24") == {
        "10.244.1.0/24": "192.0.2.11",
        "10.244.2.0/24": "192.0.2.12",
    }


def test_the_cni_config_routes_pod_veths_without_masquerade_and_maps_ports() -> None:
    conf = cni_config("10.244.3.0/24", "hakube0", "/var/lib/hakube/cni-ipam")
    plugins = conf["plugins"]
    assert isinstance(plugins, list)
    assert [p["type"] for p in plugins] == ["ptp", "portmap"]
    assert plugins[0]["ipMasq"] is False and "bridge" not in plugins[0]
    assert plugins[0]["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert plugins[1]["capabilities"] == {"portMappings": True}
    assert "mtu" not in plugins[0]
    tunnel = cni_config("10.244.3.0/24", "hakube0", "/tmp/ipam", mtu=1450)["plugins"]
    assert isinstance(tunnel, list) and tunnel[0]["mtu"] == 1450


def test_the_bridge_mode_puts_pods_on_the_named_bridge_with_hairpin() -> None:
    plugins = cni_config("10.244.3.0/24", "hakube0", "/tmp/ipam", mode="bridge")["plugins"]
    assert isinstance(plugins, list)
    assert [p["type"] for p in plugins] == ["bridge", "portmap"]
    assert plugins[0]["bridge"] == "hakube0" and plugins[0]["hairpinMode"] is True
    assert plugins[0]["ipMasq"] is False
    with pytest.raises(ValueError, match="--cni-mode 'macvlan'"):
        cni_config("10.244.3.0/24", "hakube0", "/tmp/ipam", mode="macvlan")


def test_a_vxlan_peer_is_known_by_its_address_alone() -> None:
    assert vtep_mac("192.0.2.17") == "0a:58:c0:00:02:11"
    assert gateway("10.244.7.0/24") == "10.244.7.0"
