"""The VXLAN mode of the pod routes (--pod-routes vxlan): other nodes' pods are reached through a
VXLAN device whose peers, MACs and routes come from the Node objects alone. The nodes here do
share one segment (the harness's bridge); what is checked is that pod traffic takes the tunnel,
that large transfers fit its MTU, and that a removed node's entries go."""

from __future__ import annotations

import pytest

from hakube.agent.vxlan import DEVICE, MTU, gateway, vtep_mac
from hakube.testing.netnodes import NetCluster, NetNode
from hakube.testing.wait import wait_for
from tests.net.conftest import netcluster_fixture, privileged_namespace
from tests.net.test_pod_network import NS, SERVE, pod, pod_cidr, running

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(180)]

netcluster = netcluster_fixture(nodes=2, agent_extra=["--pod-routes", "vxlan"])


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
