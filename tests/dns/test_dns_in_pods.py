"""Proof 5 of the networking issue, from inside pods on real nodes in network namespaces: a pod
with the default dnsPolicy resolves Services, headless Services, StatefulSet pod names and SRV
records, gets NXDOMAIN for unknown cluster names, and an answer within 2 s for an outside name
when cluster DNS has no upstream.

``hakube dns`` runs on node n1 (in its network namespace, on its node address, port 53, as
``system:hakube-dns``), named by the ``kube-system/kube-dns`` Service (10.96.0.10) and its
Endpoints; every node runs ``hakube proxy``, and pods get the default ClusterFirst nameserver
10.96.0.10, so every query from n1 and n2 goes through the Service rules to the DNS process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.api import convert
from hakube.client import Client, NotFound
from hakube.local.dns import DnsAddress, LocalDns, ensure_kube_dns
from hakube.testing import pki as testpki
from hakube.testing.netmasters import env as source_env
from hakube.testing.netnodes import NET_IMAGE, NetCluster
from hakube.testing.nodeproxy import NodeProxies
from hakube.testing.wait import wait_for
from tests.dns.conftest import answers

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(240)]

NS = "demo"
ZONE = f"{NS}.svc.cluster.local"


@pytest.fixture(scope="module")
def net(shared_netcluster: NetCluster) -> Iterator[tuple[NetCluster, DnsAddress]]:
    """The session's shared nodes (tests/netshared.py), with this module's proxies and DNS."""
    c = shared_netcluster
    n1 = c.nodes["n1"]
    dns = LocalDns(str(c.workdir), c.servers, pki=testpki.shared())
    addr = DnsAddress(n1.ip, 53)
    ensure_kube_dns(c.client, [addr])
    proxies = NodeProxies(c)
    proxies.start_all()
    try:
        dns.start("dns-n1", addr, "--upstream", "none", prefix=n1.argv([]), env=source_env())
        try:  # the host namespace reaches n1's address over the bridge
            wait_for(
                lambda: answers(addr, "kubernetes.default.svc.cluster.local.", "SOA") is not None,
                30,
                "cluster DNS on n1",
            )
        except TimeoutError as e:
            with open(dns.log_path("dns-n1"), errors="replace") as f:
                raise TimeoutError(f"{e}; its log:\n{f.read()[-3000:]}") from None
        yield c, addr
    finally:
        proxies.close()
        dns.stop()


def apply(client: Client, body: dict[str, Any]) -> None:
    client.apply(body)


def pod_ip(client: Client, name: str) -> str:
    try:
        return str(client.pods.get(name, namespace=NS).status.pod_ip)
    except NotFound:
        return ""


def running(client: Client, name: str) -> bool:
    try:
        p = client.pods.get(name, namespace=NS)
    except NotFound:
        return False
    return p.status.phase == "Running" and bool(p.status.pod_ip)


def test_pods_resolve_cluster_names_through_their_cluster_first_resolv_conf(
    net: tuple[NetCluster, DnsAddress],
) -> None:
    c, dns = net
    client = c.client
    apply(client, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    sleeper = ["sh", "-c", "exec sleep 3600"]
    for node in ("n1", "n2"):
        client.pods.create(
            convert.from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"client-{node}", "namespace": NS},
                    "spec": {
                        "nodeName": node,
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": NET_IMAGE, "command": sleeper}],
                    },
                }
            )
        )
    apply(
        client,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            },
        },
    )
    apply(
        client,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kv", "namespace": NS},
            "spec": {
                "clusterIP": "None",
                "selector": {"app": "kv"},
                "ports": [{"name": "peer", "port": 2380, "protocol": "TCP"}],
            },
        },
    )
    apply(
        client,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "kv", "namespace": NS},
            "spec": {
                "serviceName": "kv",
                "replicas": 2,
                "selector": {"matchLabels": {"app": "kv"}},
                "template": {
                    "metadata": {"labels": {"app": "kv"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": NET_IMAGE, "command": sleeper}],
                    },
                },
            },
        },
    )
    wait_for(
        lambda: client.services.get("web", namespace=NS).spec.cluster_ip, 20, "web's ClusterIP"
    )
    web_ip = client.services.get("web", namespace=NS).spec.cluster_ip
    for name in ("client-n1", "client-n2", "kv-0", "kv-1"):
        wait_for(lambda n=name: running(client, n), 90, f"{name} running", interval=0.3)

    # A StatefulSet pod on the pod network finds its own names in its managed /etc/hosts.
    kv0 = client.pods.get("kv-0", namespace=NS)
    res = c.nodes[kv0.spec.node_name].pod_exec("kv-0", ["cat", "/etc/hosts"], namespace=NS)
    assert f"{kv0.status.pod_ip}\tkv-0.kv.{ZONE}\tkv-0" in res.stdout.decode(), res.stdout

    def lookup(node: str, *args: str) -> tuple[int, str, float]:
        started = time.monotonic()
        res = c.nodes[node].pod_exec(f"client-{node}", ["nslookup", *args], namespace=NS)
        took = time.monotonic() - started
        return res.exit_code, res.stdout.decode() + res.stderr.decode(), took

    for node in ("n1", "n2"):
        res = c.nodes[node].pod_exec(f"client-{node}", ["cat", "/etc/resolv.conf"], namespace=NS)
        conf = res.stdout.decode()
        assert "nameserver 10.96.0.10" in conf, conf
        assert f"search {ZONE} svc.cluster.local cluster.local" in conf, conf
        assert "ndots:5" in conf, conf

        code, out, _ = lookup(node, f"web.{ZONE}")
        assert code == 0 and web_ip in out, out
        code, out, _ = lookup(node, f"kv.{ZONE}")
        kv = {pod_ip(client, "kv-0"), pod_ip(client, "kv-1")}
        assert code == 0 and all(ip in out for ip in kv), out
        for i in range(2):
            code, out, _ = lookup(node, f"kv-{i}.kv.{ZONE}")
            assert code == 0 and pod_ip(client, f"kv-{i}") in out, out
        code, out, _ = lookup(node, "-type=SRV", f"_peer._tcp.kv.{ZONE}")
        assert code == 0 and f"kv-0.kv.{ZONE}" in out and f"kv-1.kv.{ZONE}" in out, out
        code, out, _ = lookup(node, f"nope.{ZONE}")
        assert code != 0 and "NXDOMAIN" in out, out
        code, out, took = lookup(node, "outside.example")
        assert code != 0 and took < 2.0, (took, out)
