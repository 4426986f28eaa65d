"""``hakube proxy`` on a node in network namespaces: ClusterIP, NodePort, refusals, restarts.

Real master, real ``hakube proxy`` process (as ``system:kube-proxy``), real nftables in the
node's namespace, real TCP/UDP from pod namespaces, the node itself and a client host.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest

from hakube.client import Client, errors
from hakube.testing import nsthread
from hakube.testing.proxylab import CLIENT_IP, NODE_IP, POD_PORT, ProxyLab, pod_ip
from hakube.testing.wait import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(180)]


def service(name: str, ip: str, *, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "clusterIP": ip,
            "ports": ports or [{"name": "http", "port": 80, "targetPort": POD_PORT}],
            **spec,
        },
    }


def endpoints(
    name: str, ready: list[int], *, not_ready: tuple[int, ...] = (), ports: list[dict] | None = None
) -> dict:
    subset: dict[str, Any] = {"ports": ports or [{"name": "http", "port": POD_PORT}]}
    if ready:
        subset["addresses"] = [{"ip": pod_ip(i)} for i in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": pod_ip(i)} for i in not_ready]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default"},
        "subsets": [subset] if ready or not_ready else [],
    }


def answers(lab: ProxyLab, netns: str, ip: str, port: int, n: int) -> Counter[str]:
    return Counter(lab.get(netns, ip, port) for _ in range(n))


def serves(lab: ProxyLab, netns: str, ip: str, port: int, want: set[str], n: int = 10) -> bool:
    try:
        return set(answers(lab, netns, ip, port, n)) == want
    except OSError:
        return False


def refused_within(lab: ProxyLab, netns: str, ip: str, port: int) -> float:
    """Seconds a TCP connect took to be refused (AssertionError if it was not refused)."""

    def connect() -> float:
        start = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((ip, port), timeout=5).close()
        return time.monotonic() - start

    return nsthread.call_in(netns, connect)


def test_clusterip_spreads_over_ready_endpoints_from_pods_and_the_node(
    lab: ProxyLab, client: Client
) -> None:
    client.apply(service("web", "10.96.0.50"))
    client.apply(endpoints("web", [1, 2], not_ready=(3,)))
    pod3 = lab.pods[2]
    wait_for(lambda: serves(lab, pod3, "10.96.0.50", 80, {"pod1", "pod2"}), 10, "web's rules")
    for ns in (pod3, lab.node):
        got = answers(lab, ns, "10.96.0.50", 80, 40)
        assert set(got) == {"pod1", "pod2"}, got  # pod3 is not ready: never picked


def test_a_pod_reaches_itself_through_its_service(lab: ProxyLab, client: Client) -> None:
    client.apply(service("self", "10.96.0.51"))
    client.apply(endpoints("self", [1]))
    wait_for(lambda: serves(lab, lab.pods[0], "10.96.0.51", 80, {"pod1"}), 10, "hairpin")


def test_client_ip_affinity_keeps_a_client_on_one_endpoint(lab: ProxyLab, client: Client) -> None:
    client.apply(service("sticky", "10.96.0.56", sessionAffinity="ClientIP"))
    client.apply(endpoints("sticky", [1, 2, 3]))
    wait_for(lambda: _answers_ok(lab, lab.node, "10.96.0.56"), 10, "sticky's rules")
    for ns in (lab.node, lab.pods[0], lab.client):
        assert len(answers(lab, ns, "10.96.0.56", 80, 15)) == 1


def _answers_ok(lab: ProxyLab, ns: str, ip: str) -> bool:
    try:
        return bool(lab.get(ns, ip, 80))
    except OSError:
        return False


def test_nodeport_answers_from_another_host_and_from_the_node(
    lab: ProxyLab, client: Client
) -> None:
    client.apply(service("np", "10.96.0.52", type="NodePort"))
    client.apply(endpoints("np", [2, 3]))
    node_port = client.services.get("np", namespace="default").spec.ports[0].node_port
    assert 30000 <= node_port <= 32767
    wait_for(lambda: serves(lab, lab.client, NODE_IP, node_port, {"pod2", "pod3"}), 10, "nodeport")
    assert set(answers(lab, lab.node, NODE_IP, node_port, 20)) == {"pod2", "pod3"}
    # The ClusterIP from the client host too (routed to the node, masqueraded for the reply).
    assert set(answers(lab, lab.client, "10.96.0.52", 80, 20)) == {"pod2", "pod3"}
    assert CLIENT_IP not in lab.get(lab.client, NODE_IP, node_port)


def test_a_service_without_ready_endpoints_refuses_connections_at_once(
    lab: ProxyLab, client: Client
) -> None:
    client.apply(service("empty", "10.96.0.53", type="NodePort"))
    client.apply(endpoints("empty", [], not_ready=(1,)))
    node_port = client.services.get("empty", namespace="default").spec.ports[0].node_port

    def refused() -> bool:
        try:
            return refused_within(lab, lab.pods[1], "10.96.0.53", 80) < 1.0
        except AssertionError:
            return False

    wait_for(refused, 10, "empty's reject rule")
    assert refused_within(lab, lab.node, "10.96.0.53", 80) < 1.0
    assert refused_within(lab, lab.client, NODE_IP, node_port) < 1.0


def test_an_endpoints_change_is_live_within_a_second(lab: ProxyLab, client: Client) -> None:
    client.apply(service("move", "10.96.0.54"))
    client.apply(endpoints("move", [1]))
    wait_for(lambda: serves(lab, lab.node, "10.96.0.54", 80, {"pod1"}, 3), 10, "move's rules")
    start = time.monotonic()
    client.apply(endpoints("move", [3]))
    wait_for(lambda: serves(lab, lab.node, "10.96.0.54", 80, {"pod3"}, 3), 5, "the change")
    assert time.monotonic() - start < 1.5


def _udp_echo(netns: str, address: str, port: int, name: str) -> socket.socket:
    sock = nsthread.call_in(netns, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))

    def serve() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(512)
            except OSError:
                return
            sock.sendto(name.encode() + b":" + data, peer)

    threading.Thread(target=serve, daemon=True).start()
    return sock


def _udp_ask(ip: str, port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(b"q", (ip, port))
        return s.recvfrom(512)[0]


def test_a_dns_like_service_with_hand_written_endpoints_serves_udp_and_tcp(
    lab: ProxyLab, client: Client
) -> None:
    """The shape cluster DNS uses: kube-system-style Service on port 53, UDP and TCP, no
    selector, Endpoints written by their owner with a different target port."""
    echo = _udp_echo(lab.pods[1], pod_ip(2), 5353, "pod2")
    try:
        ports = [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": POD_PORT},
        ]
        client.apply(service("dns", "10.96.0.10", ports=ports))
        ep_ports = [
            {"name": "dns", "port": 5353, "protocol": "UDP"},
            {"name": "dns-tcp", "port": POD_PORT, "protocol": "TCP"},
        ]
        client.apply(endpoints("dns", [2], ports=ep_ports))

        def udp_ok() -> bool:
            try:
                return nsthread.call_in(lab.pods[0], _udp_ask, "10.96.0.10", 53) == b"pod2:q"
            except OSError:
                return False

        wait_for(udp_ok, 10, "UDP through 10.96.0.10:53")
        assert lab.get(lab.pods[0], "10.96.0.10", 53) == "pod2"
    finally:
        echo.close()


def test_restart_rebuilds_the_identical_table_and_killing_it_keeps_traffic(
    lab: ProxyLab, client: Client, cluster: Any, proxy_config: str
) -> None:
    client.apply(service("keep", "10.96.0.55"))
    client.apply(endpoints("keep", [1, 2]))
    wait_for(lambda: serves(lab, lab.node, "10.96.0.55", 80, {"pod1", "pod2"}), 10, "keep")
    wait_for(lambda: "hakube_proxy_service_ports" in lab.metrics(), 10, "metrics")
    before = lab.table_state()
    lab.kill_proxy()
    # Dead proxy: the rules stay, traffic flows.
    assert set(answers(lab, lab.pods[2], "10.96.0.55", 80, 20)) == {"pod1", "pod2"}
    env = {"HAKUBE_CONFIG": proxy_config}
    lab.start_proxy(cluster.endpoints(), env=env)
    wait_for(lambda: lab.full_syncs() == 1, 30, "the restarted proxy's first sync")
    assert lab.table_state() == before  # identical: nothing duplicated, nothing lost
    # Changes made while it is down are applied when it comes back.
    lab.kill_proxy()
    client.apply(endpoints("keep", [3]))
    client.services.delete("self", namespace="default")
    assert set(answers(lab, lab.node, "10.96.0.55", 80, 10)) == {"pod1", "pod2"}
    lab.start_proxy(cluster.endpoints(), env=env)
    wait_for(lambda: serves(lab, lab.node, "10.96.0.55", 80, {"pod3"}), 20, "keep moved")
    state = lab.table_state()
    assert not any("default/self/" in k for k in state)
    assert any("default/keep/" in k for k in state)
    metrics = lab.metrics()
    assert 'hakube_proxy_sync_duration_seconds_count{mode="full"} 1.0' in metrics
    assert "hakube_proxy_sync_errors_total 0.0" in metrics


def test_a_deleted_table_is_rebuilt(lab: ProxyLab, client: Client) -> None:
    client.apply(service("back", "10.96.0.57"))
    client.apply(endpoints("back", [2]))
    wait_for(lambda: serves(lab, lab.node, "10.96.0.57", 80, {"pod2"}, 3), 10, "back's rules")
    lab.run_nft("delete", "table", "ip", lab.table)  # as an `nft flush ruleset` would
    wait_for(lambda: serves(lab, lab.node, "10.96.0.57", 80, {"pod2"}, 3), 10, "the rebuild")


def test_the_proxy_identity_reads_services_and_cannot_write(
    cluster: Any, proxy_config: str
) -> None:
    with Client.from_config(proxy_config) as proxy:
        proxy.services.list(namespace="default")
        proxy.endpoints.list()
        with pytest.raises(errors.Forbidden):
            proxy.apply(endpoints("web", [3]))
        with pytest.raises(errors.Forbidden):
            proxy.secrets.list(namespace="default")
