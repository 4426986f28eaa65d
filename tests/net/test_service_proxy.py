"""Services routed by ``hakube proxy`` on real nodes (issue proofs 2, 3 and 4).

Three nodes in network namespaces, each with its containerd, agent and proxy; a Deployment
spread one pod per node behind a Service; a client pod on n1. Requests go from the client pod
(busybox wget through the pod's own network), from a node itself, and from the host namespace
(NodePort).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.client import Client
from hakube.testing import nsthread
from hakube.testing.netnodes import NET_IMAGE, NetCluster, NetNode
from hakube.testing.nodeproxy import NodeProxies
from hakube.testing.wait import wait_for
from tests.net import pods as podlib
from tests.net.conftest import privileged_namespace
from tests.netshared import SHARED_POD_CIDRS, shared_netcluster_fixture

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(420)]

POD_CIDRS = SHARED_POD_CIDRS
netcluster = shared_netcluster_fixture()

# Serves its pod name on 8080. A preStop pause keeps a pod serving for 4 s after its deletion
# (as Kubernetes users do for graceful endpoint removal), so "terminating" and "gone" are apart.
SERVE = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "labelSelector": {"matchLabels": labels},
                                    "topologyKey": "kubernetes.io/hostname",
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "web",
                            "image": NET_IMAGE,
                            "command": ["sh", "-c", SERVE],
                            "ports": [{"containerPort": 8080}],
                            "lifecycle": {"preStop": {"sleep": {"seconds": 4}}},
                            "readinessProbe": {
                                "tcpSocket": {"port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def service(name: str, selector: str, port: int = 80, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"app": selector},
            "ports": [{"name": "http", "port": port, "targetPort": 8080}],
            **spec,
        },
    }


def ready_pods(client: Client, app: str) -> list[str]:
    return sorted(
        p.metadata.name
        for p in client.pods.list(namespace="default", label_selector=f"app={app}").items
        if not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
    )


def cluster_ip(client: Client, name: str) -> str:
    box: list[str] = []

    def allocated() -> bool:
        box[:] = [client.services.get(name, namespace="default").spec.cluster_ip]
        return bool(box[0])

    wait_for(allocated, 20, f"a clusterIP for {name}", interval=0.1)
    return box[0]


def endpoint_count(client: Client, name: str) -> int:
    try:
        ep = client.endpoints.get(name, namespace="default")
    except Exception:
        return -1
    return sum(len(s.addresses) for s in ep.subsets)


def node_routes(c: NetCluster) -> None:
    """Wait for the agents' routes between the nodes' pod ranges (hakube.agent.routes), and
    give each node a route to the Service range: a real node's default route covers it for
    the node's own traffic; the harness' nodes have none (nothing leaves the machine)."""
    nodes = list(c.nodes.values())
    for node in nodes:
        others = [cidr for other, cidr in zip(nodes, POD_CIDRS, strict=True) if other is not node]
        wait_for(
            lambda node=node, others=others: all(node.routes(o) for o in others),
            30,
            f"{node.name}'s routes to the other nodes' pods",
            interval=0.2,
        )
        if not node.routes("10.96.0.0/12"):
            node.run(["ip", "route", "replace", "10.96.0.0/12", "via", c.gateway])


@pytest.fixture(scope="module")
def proxies(netcluster: NetCluster) -> Iterator[NodeProxies]:
    p = NodeProxies(netcluster, cluster_cidr="10.244.0.0/16", untrack=True, fast_path=True)
    try:
        p.start_all()
        for node in netcluster.nodes.values():
            wait_for(lambda node=node: p.full_syncs(node) >= 1, 30, f"proxy on {node.name}")
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def web(netcluster: NetCluster, proxies: NodeProxies) -> str:
    """Deployment web (3 pods, one per node) behind NodePort Service web; its ClusterIP."""
    client = netcluster.client
    client.apply(deployment("web", 3))
    client.apply(service("web", "web", type="NodePort"))
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "namespace": "default"},
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "c", "image": NET_IMAGE, "command": ["sleep", "3600"]}],
            },
        }
    )
    wait_for(lambda: len(ready_pods(client, "web")) == 3, 90, "3 ready web pods", interval=0.3)
    wait_for(lambda: len(ready_pods_any(client, "client")) == 1, 60, "client pod", interval=0.3)
    node_routes(netcluster)
    ip = cluster_ip(client, "web")
    wait_for(lambda: endpoint_count(client, "web") == 3, 20, "web's 3 endpoints", interval=0.1)
    return ip


def ready_pods_any(client: Client, name: str) -> list[str]:
    try:
        p = client.pods.get(name, namespace="default")
    except Exception:
        return []
    return [name] if p.status.phase == "Running" else []


def wget_loop(node: NetNode, url: str, n: int) -> list[str]:
    """``n`` sequential GETs of ``url`` from the client pod; each answer or FAIL. (No ``-T``:
    Debian 12's static busybox wget crashes with it.)"""
    script = f"for i in $(seq {n}); do wget -qO- {url} || echo FAIL; done"
    res = node.pod_exec("client", ["sh", "-c", script], timeout=n * 3 + 10)
    return res.stdout.decode().split()


def test_a_deployment_behind_a_service_answers_from_a_pod_and_via_nodeport(
    netcluster: NetCluster, web: str
) -> None:
    client = netcluster.client
    n1 = netcluster.nodes["n1"]
    pods = set(ready_pods(client, "web"))
    answers = wget_loop(n1, f"http://{web}:80/", 60)
    assert len(answers) == 60 and "FAIL" not in answers, answers
    assert set(answers) <= pods and len(set(answers)) > 1, answers
    # Pod IPs are spread over the nodes' ranges: the Service really crosses nodes.
    ips = [p.status.pod_ip for p in client.pods.list(namespace="default").items if p.status.pod_ip]
    assert {str(ipaddress.ip_network(f"{ip}/24", strict=False)) for ip in ips} >= set(POD_CIDRS)
    # NodePort, from the host namespace (this process), on each node's address.
    node_port = client.services.get("web", namespace="default").spec.ports[0].node_port
    seen = set()
    for node in netcluster.nodes.values():
        for _ in range(6):
            seen.add(nsthread.http_get(node.ip, node_port, timeout=2).strip())
    assert seen <= pods and len(seen) > 1, seen


def test_a_pod_reaches_itself_through_its_service(netcluster: NetCluster, web: str) -> None:
    """Hairpin on the real pod network: the web pod on n1 asks its own Service, whose spread
    sends a third of the requests back to it (the proxy masquerades those, so the reply
    returns through the node). With routed pod veths the node routes them like any other
    packet; on a bridge this needs the port's hairpin mode. 30 requests miss the pod itself
    with a chance of (2/3)^30, about 5e-6."""
    client = netcluster.client
    n1 = netcluster.nodes["n1"]
    mine = next(
        p.metadata.name
        for p in client.pods.list(namespace="default", label_selector="app=web").items
        if p.spec.node_name == "n1" and not p.metadata.deletion_timestamp
    )
    script = f"for i in $(seq 30); do wget -qO- http://{web}:80/ || echo FAIL; done"
    answers = n1.pod_exec(mine, ["sh", "-c", script], timeout=100).stdout.decode().split()
    assert len(answers) == 30 and "FAIL" not in answers, answers
    assert mine in answers, answers


def test_killing_the_proxy_keeps_traffic_and_a_restart_rebuilds_the_same_table(
    netcluster: NetCluster, proxies: NodeProxies, web: str
) -> None:
    client = netcluster.client
    n1 = netcluster.nodes["n1"]
    before = proxies.table(n1)
    proxies.kill(n1)
    answers = wget_loop(n1, f"http://{web}:80/", 30)
    assert "FAIL" not in answers and len(set(answers)) > 1, answers
    proxies.start(n1)
    wait_for(lambda: proxies.full_syncs(n1) == 1, 30, "the restarted proxy's sync")
    assert proxies.table(n1) == before
    # Changes made while it is down are applied when it is back.
    proxies.kill(n1)
    client.apply(service("late", "web", port=81))
    late = cluster_ip(client, "late")
    wait_for(lambda: endpoint_count(client, "late") == 3, 20, "late's endpoints", interval=0.1)
    assert not any("default/late/" in k for k in proxies.table(n1))  # nobody programmed it
    proxies.start(n1)
    wait_for(lambda: proxies.full_syncs(n1) == 1, 30, "the restarted proxy's sync")
    answers = wget_loop(n1, f"http://{late}:81/", 10)
    assert "FAIL" not in answers, answers


class Prober:
    """GETs of ``ip:80`` from ``node``'s namespace every ~20 ms, on a thread: (time, answer)."""

    def __init__(self, node: NetNode, ip: str) -> None:
        self.results: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=nsthread.call_in, args=(node.netns, self._loop, ip), daemon=True
        )
        self._thread.start()

    def _loop(self, ip: str) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                answer = nsthread.http_get(ip, 80, timeout=2).strip()
            except OSError as exc:
                answer = f"FAIL:{exc}"
            self.results.append((t, answer))
            self._stop.wait(0.02)

    def stop(self) -> list[tuple[float, str]]:
        self._stop.set()
        self._thread.join(10)
        return self.results


def test_scaling_down_moves_traffic_within_two_seconds_and_zero_refuses_fast(
    netcluster: NetCluster, proxies: NodeProxies, web: str
) -> None:
    client = netcluster.client
    client.apply(deployment("shrink", 3))
    client.apply(service("shrink", "shrink"))
    ip = cluster_ip(client, "shrink")
    wait_for(lambda: len(ready_pods(client, "shrink")) == 3, 90, "3 shrink pods", interval=0.3)
    wait_for(lambda: endpoint_count(client, "shrink") == 3, 20, "3 endpoints", interval=0.1)
    n2 = netcluster.nodes["n2"]
    wait_for(
        lambda: _answers(n2, ip, 12) == set(ready_pods(client, "shrink")), 10, "all three serve"
    )
    prober = Prober(n2, ip)
    time.sleep(0.5)  # some traffic before the change
    t0 = time.monotonic()
    dep = client.deployments.get("shrink", namespace="default")
    dep.spec.replicas = 1
    client.deployments.update(dep)
    wait_for(lambda: len(ready_pods(client, "shrink")) == 1, 20, "one pod left", interval=0.05)
    (kept,) = ready_pods(client, "shrink")
    removed = {
        p.metadata.name
        for p in client.pods.list(namespace="default", label_selector="app=shrink").items
        if p.metadata.deletion_timestamp
    }
    assert len(removed) == 2, "the removed pods are still terminating"
    time.sleep(max(0.0, t0 + 3.0 - time.monotonic()))
    results = prober.stop()
    failures = [r for r in results if r[1].startswith("FAIL")]
    assert not failures, failures[:5]
    late = [a for t, a in results if t > t0 + 2.0]
    assert late and set(late) == {kept}, (kept, late[:10])
    assert any(a in removed for t, a in results if t < t0), "traffic reached them before"
    # Scale to zero: refused at once, not hung.
    dep = client.deployments.get("shrink", namespace="default")
    dep.spec.replicas = 0
    client.deployments.update(dep)
    wait_for(lambda: endpoint_count(client, "shrink") == 0, 20, "no endpoints", interval=0.05)

    def refused_fast() -> bool:
        start = time.monotonic()
        try:
            nsthread.call_in(n2.netns, socket.create_connection, (ip, 80), 5).close()
        except ConnectionRefusedError:
            return time.monotonic() - start < 1.0
        except OSError:
            return False
        return False

    wait_for(refused_fast, 3, "connections to shrink refused fast", interval=0.05)


def test_pod_to_pod_traffic_skips_conntrack_while_a_service_connection_keeps_it(
    netcluster: NetCluster, web: str
) -> None:
    """The proxy's notrack rule (``--untrack-pod-traffic`` with a ``--cluster-cidr``; these
    tests run every proxy with it and with the fast path, so the Service tests above check
    they break nothing): a connection from a pod to a pod on another node, by address, leaves
    no conntrack entry on either node; one through the Service, DNATed on the client's node,
    keeps its entry there (its replies are translated back) -- and both answer."""
    client = netcluster.client
    n1, n2 = netcluster.nodes["n1"], netcluster.nodes["n2"]
    serve = SERVE.replace("8080", "8081")  # no Service's endpoint: its replies are not learnt
    client.pods.create(podlib.pod("plain", "n2", serve, namespace="default"))
    try:
        ip = podlib.running(client, "plain", namespace="default").status.pod_ip
        me = client.pods.get("client", namespace="default").status.pod_ip
        url = f"http://{ip}:8081/"
        wait_for(lambda: wget_loop(n1, url, 1) == ["plain"], 30, "plain serving", interval=0.2)
        assert wget_loop(n1, url, 3) == ["plain"] * 3
        for node in (n1, n2):
            table = node.run(["cat", "/proc/net/nf_conntrack"]).stdout.splitlines()
            mine = [line for line in table if f"src={me} dst={ip} " in line]
            assert not mine, (node.name, mine)
        answers = wget_loop(n1, f"http://{web}:80/", 3)
        assert len(answers) == 3 and "FAIL" not in answers, answers
        assert f"src={me} dst={web} " in n1.run(["cat", "/proc/net/nf_conntrack"]).stdout
    finally:
        client.pods.delete("plain", namespace="default")


def test_a_host_port_reached_from_a_pod_on_another_node_answers_with_the_node_address(
    netcluster: NetCluster, web: str
) -> None:
    """A hostPort is DNATed by the CNI ``portmap`` plugin, not by the proxy; its backend's
    replies are pod-to-pod packets all the same, and the proxy learns that backend from the
    translated connection, so they stay tracked and leave with the node's address (the client
    would reset a reply from the pod's own address, and the GET would fail)."""
    client = netcluster.client
    n1, n2 = netcluster.nodes["n1"], netcluster.nodes["n2"]
    privileged_namespace(client, "untrack")
    serve = SERVE.replace("8080", "8081")
    ports = [{"containerPort": 8081, "hostPort": 18081}]
    client.pods.create(podlib.pod("hostport", "n2", serve, namespace="untrack", ports=ports))
    try:
        podlib.running(client, "hostport", namespace="untrack")
        url = f"http://{n2.ip}:18081/"
        wait_for(lambda: wget_loop(n1, url, 1) == ["hostport"], 30, "hostPort", interval=0.2)
        assert wget_loop(n1, url, 3) == ["hostport"] * 3
        assert "8081" in n2.run(["nft", "list", "set", "ip", "hakube-proxy", "nat-backends"]).stdout
    finally:
        client.namespaces.delete("untrack")


def _counted(node: NetNode, table: str, src: str, dst: str) -> int:
    """Packets from ``src`` to ``dst`` node's netfilter saw since ``table`` was made."""
    out = node.run(["nft", "list", "table", "ip", table]).stdout
    line = next(x for x in out.splitlines() if f"ip saddr {src} ip daddr {dst}" in x)
    return int(line.split("packets ")[1].split()[0])


def test_the_fast_path_hands_pod_packets_to_the_pod_but_not_a_backends_replies(
    netcluster: NetCluster, web: str, proxies: NodeProxies
) -> None:
    """With ``--fast-path-device``, a packet arriving at n2 for a pod there skips n2's IP
    stack (its netfilter never sees it); a reply from a Service endpoint to the client pod
    on n1, whose connection n1 DNATed, is left to n1's stack (conntrack turns its source
    back into the ClusterIP) -- and both answer. A restarted proxy replaces its program: one
    filter, still shortcutting."""
    client = netcluster.client
    n1, n2 = netcluster.nodes["n1"], netcluster.nodes["n2"]
    serve = SERVE.replace("8080", "8082")  # not a Service's endpoint
    client.pods.create(podlib.pod("fast", "n2", serve, namespace="default"))
    table = f"hkfast{secrets.token_hex(3)}"
    me = client.pods.get("client", namespace="default").status.pod_ip
    on_n2 = [
        p
        for p in client.pods.list(namespace="default", label_selector="app=web").items
        if p.spec.node_name == "n2"
    ][0].status.pod_ip
    try:
        ip = podlib.running(client, "fast", namespace="default").status.pod_ip
        url = f"http://{ip}:8082/"
        wait_for(lambda: wget_loop(n1, url, 1) == ["fast"], 30, "fast serving", interval=0.2)
        rules = [f"ip saddr {me} ip daddr {ip} counter", f"ip saddr {on_n2} ip daddr {me} counter"]
        for node in (n1, n2):
            node.run(["nft", "add", "table", "ip", table])
            node.run(["nft", "add", "chain", "ip", table, "pre",
                      "{ type filter hook prerouting priority -400 ; }"])  # fmt: skip
            for rule in rules:
                node.run(["nft", "add", "rule", "ip", table, "pre", *rule.split()])
        assert wget_loop(n1, url, 5) == ["fast"] * 5
        assert _counted(n2, table, me, ip) == 0  # never reached n2's stack
        # The Service: replies from the endpoint on n2 need n1's conntrack.
        deadline = time.monotonic() + 30
        while _counted(n1, table, on_n2, me) == 0:  # the random spread reaches n2's pod
            assert time.monotonic() < deadline, "no request reached web's pod on n2"
            answers = wget_loop(n1, f"http://{web}:80/", 6)
            assert len(answers) == 6 and "FAIL" not in answers, answers
        proxies.kill(n2)
        proxies.start(n2)
        wait_for(lambda: proxies.full_syncs(n2) == 1, 30, "the restarted proxy's sync")
        shown = n2.run(["tc", "filter", "show", "dev", "eth0", "ingress"]).stdout
        assert shown.count("direct-action") == 1, shown
        assert wget_loop(n1, url, 3) == ["fast"] * 3
        assert _counted(n2, table, me, ip) == 0
    finally:
        for node in (n1, n2):
            node.run(["nft", "delete", "table", "ip", table], check=False)
        client.pods.delete("fast", namespace="default")


def _answers(node: NetNode, ip: str, n: int) -> set[str]:
    out = set()
    for _ in range(n):
        try:
            out.add(nsthread.call_in(node.netns, nsthread.http_get, ip, 80).strip())
        except OSError:
            out.add("FAIL")
    return out
