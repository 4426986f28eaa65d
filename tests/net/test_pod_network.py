"""The pod network across nodes (proofs 1 and 6 of the networking issue), on three real nodes in
network namespaces: the controller-manager gives each Node a podCIDR, each agent builds its pod
bridge from it and routes the other nodes' ranges to them (host-gw), so a pod on one node reaches
a pod on another by its address; hostPort answers at the node's address; a removed node's
routes vanish from the others and its range is handed out again."""

from __future__ import annotations

import ipaddress
import urllib.request

import pytest

from hakube.api.v1 import core_pb2, meta_pb2
from hakube.testing.netnodes import NetCluster, NetNode
from hakube.testing.wait import wait_for
from tests.net.conftest import netcluster_fixture, privileged_namespace
from tests.net.pods import NS, SERVE, pod, pod_cidr, running

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(180)]

PROTO = "233"
CLUSTER_CIDR = ipaddress.ip_network("10.244.0.0/16")
GHOST_CIDR = "10.244.200.0/24"
netcluster = netcluster_fixture(nodes=3)


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
    # Within a resync or two (2 s each here); 30 s leaves room for a loaded 2-core machine,
    # where other test clusters' agents are running too.
    try:
        wait_for(
            lambda: owned_routes(n1) == expected_routes(netcluster, n1),
            30,
            "n1 resynced",
            interval=0.1,
        )
    except TimeoutError as e:
        raise AssertionError(
            f"{e}: routes {n1.routes()}, expected {expected_routes(netcluster, n1)}\n"
            f"{n1.agent_log()}"
        ) from None
    assert any(r.startswith("10.244.251.0/24 ") for r in n1.routes())
    n1.run(["ip", "route", "del", "10.244.251.0/24"])


def test_routes_follow_a_node_whose_address_changes_and_go_with_it(netcluster: NetCluster) -> None:
    """A Node without an agent (its status written here): its route appears on every node,
    moves when its InternalIP changes, and goes when it is deleted -- within a few seconds."""
    client = netcluster.client
    hosts = list(netcluster.subnet.hosts())
    ghost = client.nodes.create(
        core_pb2.Node(metadata=meta_pb2.ObjectMeta(name="ghost"), spec={"pod_cidr": GHOST_CIDR})
    )
    others = list(netcluster.nodes.values())
    for address in (str(hosts[100]), str(hosts[101])):
        ghost = client.nodes.get("ghost")
        del ghost.status.addresses[:]
        ghost.status.addresses.add(type="InternalIP", address=address)
        ghost = client.nodes.update_status(ghost)
        for node in others:
            wait_for(
                lambda node=node, a=address: owned_routes(node).get(GHOST_CIDR) == a,
                5,
                f"{node.name} routes {GHOST_CIDR} via {address}",
                interval=0.1,
            )
    client.nodes.delete("ghost")
    for node in others:
        wait_for(
            lambda node=node: GHOST_CIDR not in owned_routes(node), 5, f"{node.name} forgets ghost"
        )


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
    # A pod bound before the node exists, with the controller-manager away while the node
    # registers: the agent waits for its podCIDR before it runs pods, so the pod starts on the
    # pod network, not the host's.
    assert netcluster.controller_manager is not None
    netcluster.controller_manager.kill("cm-1")
    netcluster.client.pods.create(pod("early", "n5", "exec sleep 3600"))
    n5 = netcluster.add_node("n5", start_agent=False)
    n5.start_agent(wait_ready=False)
    wait_for(n5.ready, 30, "n5 registered", interval=0.1)
    assert not pod_cidr(netcluster, "n5")
    netcluster.controller_manager.start("cm-1")
    wait_for(lambda: pod_cidr(netcluster, "n5") == cidr, 20, "n5 gets n4's freed range")
    early = running(netcluster.client, "early")
    assert ipaddress.ip_address(early.status.pod_ip) in ipaddress.ip_network(cidr)
    for node in others:
        wait_for(
            lambda node=node: owned_routes(node).get(cidr) == netcluster.nodes["n5"].ip,
            10,
            f"{node.name} routes n5",
        )
