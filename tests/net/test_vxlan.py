"""The VXLAN mode of the pod routes (--pod-routes vxlan): other nodes' pods are reached through a
VXLAN device whose peers, MACs and routes come from the Node objects alone. The nodes here do
share one segment (the harness's bridge); what is checked is that pod traffic takes the tunnel,
that large transfers fit its MTU, and that a removed node's entries go."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import struct

import pytest

from hakube.agent.vxlan import DEVICE, MTU, PORT, TABLE, VNI, gateway, vtep_mac
from hakube.testing.netnodes import NetCluster, NetNode
from hakube.testing.wait import wait_for
from tests.conftest import require
from tests.net.conftest import netcluster_fixture, privileged_namespace
from tests.net.pods import NS, SERVE, pod, pod_cidr, running

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(180)]

_vxlan_cluster = netcluster_fixture(nodes=2, agent_extra=["--pod-routes", "vxlan"])


@pytest.fixture(scope="module")
def netcluster(request: pytest.FixtureRequest) -> NetCluster:
    """The two-node cluster in vxlan mode; the mode needs nft (scripts/install/nftables.sh)."""
    require(None if shutil.which("nft") else "nft is not installed (scripts/install/nftables.sh)")
    cluster: NetCluster = request.getfixturevalue("_vxlan_cluster")
    return cluster


def tunnel_routes(node: NetNode) -> list[str]:
    return node.routes("proto", "233")


def test_pods_on_two_nodes_talk_through_the_vxlan_device(netcluster: NetCluster) -> None:
    privileged_namespace(netcluster.client, NS)
    n1, n2 = netcluster.nodes["n1"], netcluster.nodes["n2"]
    cidr2 = pod_cidr(netcluster, "n2")
    want = f"{cidr2} via {gateway(cidr2)} dev {DEVICE}"
    wait_for(lambda: any(r.startswith(want) for r in tunnel_routes(n1)), 10, "n1's tunnel route")
    link = n1.run(["ip", "-d", "link", "show", DEVICE]).stdout
    assert "vxlan id 4242" in link and f"mtu {MTU}" in link and vtep_mac(n1.ip) in link
    assert f"dst {n2.ip}" in n1.run(["bridge", "fdb", "show", "dev", DEVICE]).stdout
    big = SERVE.replace(
        "hostname > /www/index.html", "hostname > /www/index.html && seq 1 40000 > /www/big"
    )
    netcluster.client.pods.create(pod("vx-a", "n1", big))
    netcluster.client.pods.create(pod("vx-b", "n2", big))
    a, b = running(netcluster.client, "vx-a"), running(netcluster.client, "vx-b")
    res = n1.pod_exec(
        "vx-a", ["wget", "-qO-", f"http://{b.status.pod_ip}:8080/index.html"], namespace=NS
    )
    assert (res.exit_code, res.stdout.decode().strip()) == (0, "vx-b"), res.stderr
    # ~230 kB: full-size segments, which must fit the tunnel's MTU.
    res = n2.pod_exec(
        "vx-b", ["sh", "-c", f"wget -qO- http://{a.status.pod_ip}:8080/big | wc -l"], namespace=NS
    )
    assert res.stdout.decode().strip() == "40000", res.stderr
    seen = (
        n1.pod_exec(
            "vx-a", ["wget", "-qO-", f"http://{b.status.pod_ip}:8080/cgi-bin/remote"], namespace=NS
        )
        .stdout.decode()
        .strip()
    )
    assert seen in (a.status.pod_ip, f"[::ffff:{a.status.pod_ip}]")


def _injected_frame(vtep: str, src_ip: str, dst_ip: str, port: int, payload: bytes) -> bytes:
    """A VXLAN packet body (VNI 4242) carrying an Ethernet frame to ``vtep`` with an IPv4/UDP
    datagram ``src_ip`` -> ``dst_ip``:``port`` -- what an attacker would send to reach a pod."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
        socket.inet_aton(src_ip), socket.inet_aton(dst_ip),
    )  # fmt: skip
    words = struct.unpack("!10H", hdr)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    hdr = hdr[:10] + struct.pack("!H", ~total & 0xFFFF) + hdr[12:]
    eth = bytes.fromhex(vtep.replace(":", "")) + bytes.fromhex("020000000001") + b"\x08\x00"
    return struct.pack("!II", 0x08000000, VNI << 8) + eth + hdr + udp


def test_vxlan_from_anyone_but_a_node_is_dropped_before_it_reaches_a_pod(
    netcluster: NetCluster,
) -> None:
    """The attack: from the host namespace (on the nodes' network, but no node), send a VXLAN
    packet to node 1 carrying a datagram to a pod, with a forged source from node 2's range."""
    n1 = netcluster.nodes["n1"]
    table = n1.run(["nft", "list", "table", "ip", TABLE]).stdout
    assert netcluster.nodes["n2"].ip in table and "dport 4789" in table
    netcluster.client.pods.create(pod("vx-sink", "n1", "exec sleep 3600"))
    sink = running(netcluster.client, "vx-sink")
    before = udp_arrivals(n1, "vx-sink")
    forged = str(ipaddress.ip_network(pod_cidr(netcluster, "n2")).network_address + 7)
    frame = _injected_frame(vtep_mac(n1.ip), forged, sink.status.pod_ip, 9999, b"owned\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(5):
            s.sendto(frame, (n1.ip, PORT))

    def dropped() -> int:
        out = n1.run(["nft", "list", "table", "ip", TABLE]).stdout
        return int(re.search(r"counter packets (\d+)", out).group(1))  # type: ignore[union-attr]

    wait_for(lambda: dropped() >= 5, 5, "the forged packets counted and dropped", interval=0.1)
    assert udp_arrivals(n1, "vx-sink") == before  # (without the table, this grows by 5)


def udp_arrivals(node: NetNode, pod_name: str) -> int:
    """UDP datagrams that reached the pod's network stack (delivered or to a closed port)."""
    snmp = node.pod_exec(pod_name, ["cat", "/proc/net/snmp"], namespace=NS).stdout.decode()
    names, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Udp:")]
    udp = dict(zip(names, map(int, values), strict=True))
    return udp["InDatagrams"] + udp["NoPorts"]


def test_a_removed_node_leaves_no_tunnel_entries_behind(netcluster: NetCluster) -> None:
    n1 = netcluster.nodes["n1"]
    n3 = netcluster.add_node("n3")
    cidr3 = pod_cidr(netcluster, "n3")

    def entries() -> tuple[bool, bool, bool]:
        fdb = n1.run(["bridge", "fdb", "show", "dev", DEVICE]).stdout
        neigh = n1.run(["ip", "neigh", "show", "dev", DEVICE]).stdout
        return (
            any(r.startswith(cidr3) for r in tunnel_routes(n1)),
            vtep_mac(n3.ip) in fdb,
            gateway(cidr3) in neigh.split(),
        )

    wait_for(lambda: entries() == (True, True, True), 10, "n1's entries for n3")
    netcluster.remove_node("n3")
    wait_for(lambda: entries() == (False, False, False), 5, "n1's entries for n3 gone")
