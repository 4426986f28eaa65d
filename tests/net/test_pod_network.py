"""The pod network across nodes (proofs 1 and 6 of the networking issue), on three real nodes in
network namespaces: the controller-manager gives each Node a podCIDR, each agent builds its pod
bridge from it and routes the other nodes' ranges to them (host-gw), so a pod on one node reaches
a pod on another by its address; hostPort answers at the node's address; a removed node's
routes vanish from the others and its range is handed out again."""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Any

import pytest

from hakube.api import convert
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.testing.netnodes import NET_IMAGE, NetCluster, NetNode
from hakube.testing.wait import wait_for
from tests.net.conftest import netcluster_fixture, privileged_namespace

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(180)]

NS = "podnet"
PROTO = "233"
CLUSTER_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVE = (
    "mkdir -p /www/cgi-bin && hostname > /www/index.html"
    " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n'"
    " > /www/cgi-bin/remote && chmod 755 /www/cgi-bin/remote"
    " && exec httpd -f -p 8080 -h /www"
)
"""A web server whose index names the pod and whose /cgi-bin/remote answers the client's
address as the server saw it."""
netcluster = netcluster_fixture(nodes=3)


def pod(name: str, node: str, command: str, **container: Any) -> pod_pb2.Pod:
    out: pod_pb2.Pod = convert.from_dict(  # type: ignore[assignment]
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "c", "image": NET_IMAGE, "command": ["sh", "-c", command], **container}
                ],
            },
        }
    )
    return out


def running(client: Client, name: str, timeout: float = 60) -> pod_pb2.Pod:
    def ok() -> bool:
        p = client.pods.get(name, namespace=NS)
        return p.status.phase == "Running" and bool(p.status.pod_ip)

    wait_for(ok, timeout, f"pod {NS}/{name} Running with an address", interval=0.2)
    return client.pods.get(name, namespace=NS)


def pod_cidr(c: NetCluster, node: str) -> str:
    return c.client.nodes.get(node).spec.pod_cidr


def owned_routes(node: NetNode) -> dict[str, str]:
    """This node's routes marked as the agent's: destination -> next hop."""
    out = {}
    for line in node.routes("proto", PROTO):
        words = line.split()
        out[words[0]] = words[words.index("via") + 1]
    return out


def expected_routes(c: NetCluster, node: NetNode) -> dict[str, str]:
    return {pod_cidr(c, o.name): o.ip for o in c.nodes.values() if o is not node}


@pytest.fixture(scope="module")
def namespace(netcluster: NetCluster) -> str:
    privileged_namespace(netcluster.client, NS)  # hostPort needs more than baseline allows
    return NS


def test_every_node_gets_its_own_range_and_routes_to_the_others(netcluster: NetCluster) -> None:
    cidrs = {name: pod_cidr(netcluster, name) for name in netcluster.nodes}
    assert all(cidrs.values()), cidrs
    assert len(set(cidrs.values())) == 3
    for cidr in cidrs.values():
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == 24 and net.subnet_of(CLUSTER_CIDR)  # type: ignore[arg-type]
    for node in netcluster.nodes.values():
        wait_for(
            lambda node=node: owned_routes(node) == expected_routes(netcluster, node),
            10,
            f"routes of {node.name}",
            interval=0.1,
        )
        assert node.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"


def test_a_pod_reaches_a_pod_on_another_node_by_its_address(
    netcluster: NetCluster, namespace: str
) -> None:
    client = netcluster.client
    names = {"n1": "web-a", "n2": "web-b", "n3": "web-c"}
    for node, name in names.items():
        client.pods.create(pod(name, node, SERVE))
    pods = {node: running(client, name) for node, name in names.items()}
    ips = [p.status.pod_ip for p in pods.values()]
    assert len(set(ips)) == 3, ips
    for node, p in pods.items():
        assert ipaddress.ip_address(p.status.pod_ip) in ipaddress.ip_network(
            pod_cidr(netcluster, node)
        )
        assert p.status.host_ip == netcluster.nodes[node].ip
    # Every pod fetches every other pod's page; the answer names the serving pod.
    for node, name in names.items():
        for other, target in pods.items():
            if other == node:
                continue
            url = f"http://{target.status.pod_ip}:8080/index.html"
            res = netcluster.nodes[node].pod_exec(name, ["wget", "-qO-", url], namespace=NS)
            assert (res.exit_code, res.stdout.decode().strip()) == (0, target.metadata.name), (
                f"{name} on {node} -> {target.metadata.name}: {res.stderr.decode()}"
            )
    # The server sees the client pod's own address: no NAT between nodes.
    client_ip = pods["n1"].status.pod_ip
    url = f"http://{pods['n2'].status.pod_ip}:8080/cgi-bin/remote"
    res = netcluster.nodes["n1"].pod_exec("web-a", ["wget", "-qO-", url], namespace=NS)
    seen = res.stdout.decode().strip()  # httpd listens on IPv6: an IPv4-mapped address
    assert seen in (client_ip, f"[::ffff:{client_ip}]"), res.stderr.decode()


def test_a_host_port_answers_at_the_node_address_from_the_host(
    netcluster: NetCluster, namespace: str
) -> None:
    client = netcluster.client
    client.pods.create(
        pod("hostport", "n2", SERVE, ports=[{"containerPort": 8080, "hostPort": 18080}])
    )
    running(client, "hostport")
    node_ip = netcluster.nodes["n2"].ip
    body: list[str] = []

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://{node_ip}:18080/index.html", timeout=2) as r:
                body[:] = [r.read().decode().strip()]
                return True
        except OSError:
            return False

    wait_for(answers, 20, f"hostPort 18080 at {node_ip}", interval=0.2)
    assert body == ["hostport"]


def test_a_restarted_agent_resyncs_only_its_own_routes(netcluster: NetCluster) -> None:
    n1 = netcluster.nodes["n1"]
    n1.stop_agent()
    # Left by an earlier run: a stale route of ours, and a route of someone else's.
    n1.run(
        ["ip", "route", "add", "10.244.250.0/24", "via", netcluster.nodes["n2"].ip, "proto", PROTO]
    )
    n1.run(["ip", "route", "add", "10.244.251.0/24", "via", netcluster.nodes["n2"].ip])
    n1.start_agent()
    wait_for(
        lambda: owned_routes(n1) == expected_routes(netcluster, n1), 10, "n1 resynced", interval=0.1
    )
    assert any(r.startswith("10.244.251.0/24 ") for r in n1.routes())
    n1.run(["ip", "route", "del", "10.244.251.0/24"])


def test_a_removed_node_loses_its_routes_and_its_range_is_given_again(
    netcluster: NetCluster,
) -> None:
    n4 = netcluster.add_node("n4")
    cidr = pod_cidr(netcluster, "n4")
    assert cidr and cidr not in {pod_cidr(netcluster, n) for n in ("n1", "n2", "n3")}
    others = [netcluster.nodes[n] for n in ("n1", "n2", "n3")]
    for node in others:
        wait_for(
            lambda node=node: owned_routes(node).get(cidr) == n4.ip, 10, f"{node.name} routes n4"
        )
    netcluster.remove_node("n4")
    for node in others:
        wait_for(
            lambda node=node: cidr not in owned_routes(node), 5, f"n4's route gone from {node.name}"
        )
    netcluster.wait_node_gone("n4")
    netcluster.add_node("n5")
    wait_for(lambda: pod_cidr(netcluster, "n5") == cidr, 20, "n5 gets n4's freed range")
    for node in others:
        wait_for(
            lambda node=node: owned_routes(node).get(cidr) == netcluster.nodes["n5"].ip,
            10,
            f"{node.name} routes n5",
        )
