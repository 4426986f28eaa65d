"""The multi-node harness itself: nodes in their own namespaces, each with its containerd and
agent, reach the masters over the bridge; pods get addresses from their node's range."""

from __future__ import annotations

import ipaddress

import pytest

from hakube.api import convert
from hakube.api.v1 import pod_pb2
from hakube.testing.netnodes import NetCluster
from hakube.testing.wait import wait_for
from tests.net.conftest import netcluster_fixture

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(240)]

CIDRS = ["10.244.101.0/24", "10.244.102.0/24"]
netcluster = netcluster_fixture(nodes=2, pod_cidrs=CIDRS)


def test_each_node_is_its_own_namespace_with_its_own_address_and_runtime(
    netcluster: NetCluster,
) -> None:
    n1, n2 = netcluster.nodes["n1"], netcluster.nodes["n2"]
    assert n1.netns != n2.netns and n1.ip != n2.ip
    assert n1.containerd is not None and n2.containerd is not None
    assert n1.containerd.socket != n2.containerd.socket
    for node in (n1, n2):
        obj = netcluster.client.nodes.get(node.name)
        assert [a.address for a in obj.status.addresses if a.type == "InternalIP"] == [node.ip]
        assert f"{node.ip}/" in node.run(["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
    # The nodes see each other over the bridge, and nothing beyond it.
    n1.run(["busybox", "ping", "-c", "1", "-W", "2", n2.ip])
    assert not [r for r in n1.routes() if r.startswith("default")]


def test_pods_run_on_each_node_with_addresses_from_its_range(netcluster: NetCluster) -> None:
    client = netcluster.client
    for name in ("n1", "n2"):
        client.pods.create(_pod(f"harness-{name}", name))
    ips = {}
    for i, name in enumerate(("n1", "n2")):
        pod_name = f"harness-{name}"

        def running(pod_name: str = pod_name) -> bool:
            p = client.pods.get(pod_name, namespace="default")
            return p.status.phase == "Running" and bool(p.status.pod_ip)

        wait_for(running, 60, f"pod {pod_name} Running", interval=0.2)
        pod = client.pods.get(pod_name, namespace="default")
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(CIDRS[i])
        ips[name] = pod.status.pod_ip
        node = netcluster.nodes[name]
        out = node.pod_exec(pod_name, ["ip", "-4", "-o", "addr", "show", "eth0"])
        assert f"{pod.status.pod_ip}/" in out.stdout.decode(), out
        assert pod.status.host_ip == node.ip
    assert ips["n1"] != ips["n2"]


def _pod(name: str, node: str) -> pod_pb2.Pod:
    return convert.from_dict(  # type: ignore[return-value]
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "c", "image": "hakube.test/net:1", "command": ["sleep", "3600"]}
                ],
            },
        }
    )
