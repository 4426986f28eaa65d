"""The multi-node harness itself: nodes in their own namespaces, each with its containerd and
agent, reach the masters over the bridge; pods get addresses from their node's range."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from hakube.api import convert
from hakube.api.v1 import pod_pb2
from hakube.testing.netnodes import NetCluster
from hakube.testing.netns import ip
from hakube.testing.wait import wait_for
from tests.net.conftest import prerequisites
from tests.netshared import SHARED_POD_CIDRS, shared_netcluster_fixture

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(240)]

CIDRS = SHARED_POD_CIDRS
netcluster = shared_netcluster_fixture()


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
        # A program of this machine, run in the pod's network namespace, sees the same.
        argv = node.pod_argv(pod_name, ["ip", "-4", "-o", "addr", "show", "eth0"])
        host_view = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
        assert f"{pod.status.pod_ip}/" in host_view.stdout
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


def test_a_failing_test_body_leaves_nothing_behind() -> None:
    prerequisites()
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="the test failed"), NetCluster(nodes=1) as c:
        node = c.nodes["n1"]
        assert node.agent is not None and node.containerd is not None
        pids = [node.agent.pid, *node.pids()]
        ctd_base = str(node.containerd.base)
        raise RuntimeError("the test failed")
    # Killed processes whose parent died too are reaped by init, a moment later.
    assert pids
    wait_for(lambda: not [p for p in pids if Path(f"/proc/{p}").exists()], 10, "no process left")
    assert not ip("-o", "link", "show", "dev", c.prefix, check=False).strip()
    assert not [ns for ns in ip("netns", "list").split() if ns.startswith(c.prefix)]
    assert not c.workdir.exists() and not Path(ctd_base).exists()
    assert ctd_base not in Path("/proc/self/mountinfo").read_text()
