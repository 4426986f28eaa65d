"""``hakubectl logs``/``exec``/``top`` through the masters' NodeProxy to a real agent (simulated
runtime: fast, no containerd). The master dials the agent as itself and checks it is the node
it means; callers are authenticated like any request, and nodes may not use the proxy."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from hakube.agent.agent import Agent
from hakube.api import convert
from hakube.api.agent.v1 import agent_pb2
from hakube.api.v1 import core_pb2, nodeproxy_pb2, nodeproxy_pb2_grpc
from hakube.client import Client
from hakube.pki import files
from hakube.pki.tls import Credentials, channel_credentials
from hakube.testing.cluster import LocalCluster
from hakube.testing.nodepki import provision_node
from hakube.testing.wait import wait_for
from tests.agent.conftest import ctl_endpoints, make_pod, wait_pod

pytestmark = pytest.mark.timeout(60)
IMAGE = "hakube.test/busybox:1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _running_pod(client: Client, agent: Agent, name: str, script: str) -> None:
    client.pods.create(
        make_pod(
            name,
            agent.s.node_name,
            [{"name": "c", "image": IMAGE, "command": ["sh", "-c", script]}],
        )
    )
    wait_pod(client, name, lambda p: p.status.phase == "Running", 20, "Running")


def test_logs_exec_and_top_go_through_a_master(client: Client, sim_agent: Agent) -> None:
    pod = _name("proxied")
    _running_pod(client, sim_agent, pod, "echo hello from the pod; sleep 3600")
    wait_for(
        lambda: "hello from the pod" in ctl_endpoints(client, "logs", pod)[1],
        15,
        "the pod's output through the master",
    )
    code, out, err = ctl_endpoints(
        client, "exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert (code, out, err) == (3, "out\n", "err\n")
    code, out, _ = ctl_endpoints(client, "top", "nodes", sim_agent.s.node_name)
    assert code == 0 and out.split("\n")[1].split()[0] == sim_agent.s.node_name


def test_a_followed_log_stays_open_until_the_caller_goes_away(
    client: Client, sim_agent: Agent
) -> None:
    # (The simulated runtime prints at start only; new lines arriving while followed are
    # covered with real containerd in test_agent_containerd.py.)
    pod = _name("following")
    _running_pod(client, sim_agent, pod, "echo one; echo two; sleep 3600")
    wait_for(lambda: ctl_endpoints(client, "logs", pod)[1] == "one\ntwo\n", 15, "output")
    stub = client.transport.stubs(client.servers[0]).node_proxy
    call = stub.Logs(
        agent_pb2.LogsRequest(namespace="default", pod=pod, follow=True, tail_lines=-1), timeout=30
    )
    got = ""
    for chunk in call:
        got += chunk.data.decode()
        if "two" in got:
            break
    assert got == "one\ntwo\n"
    assert call.is_active()  # still following
    call.cancel()
    assert call.code() == grpc.StatusCode.CANCELLED
    # the master is not left holding anything: a fresh call still gets a slot and an answer
    assert ctl_endpoints(client, "logs", pod, "--tail", "1")[1] == "two\n"


def test_errors_name_the_pod_or_node(client: Client) -> None:
    code, _, err = ctl_endpoints(client, "logs", "no-such-pod")
    assert code != 0 and 'pods "no-such-pod" not found' in err and len(err.splitlines()) == 1
    code, _, err = ctl_endpoints(client, "top", "nodes", "no-such-node")
    assert code != 0 and "no-such-node" in err and len(err.splitlines()) == 1


def test_the_master_refuses_an_agent_that_is_another_node(client: Client, sim_agent: Agent) -> None:
    # A Node whose published address is where another node's agent listens (addresses move).
    node: core_pb2.Node = convert.from_dict(  # type: ignore[assignment]
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "impostor-target"}}
    )
    created = client.nodes.create(node)
    created.status.addresses.add(type="InternalIP", address="127.0.0.1")
    created.status.daemon_endpoints.kubelet_endpoint.port = sim_agent.server.port
    client.nodes.update_status(created)
    try:
        code, _, err = ctl_endpoints(client, "top", "nodes", "impostor-target")
        assert code != 0
        assert f'presents a certificate for "system:node:{sim_agent.s.node_name}"' in err
    finally:
        client.nodes.delete("impostor-target")


def test_a_node_may_not_use_the_proxy(
    cluster: LocalCluster, sim_agent: Agent, tmp_path: Path
) -> None:
    node = provision_node(cluster, str(tmp_path / "nosy"), "nosy", ["127.0.0.1"])
    creds = channel_credentials(
        Credentials(files.read(node.ca_cert), files.read(node.cert), files.read(node.key))
    )
    with grpc.secure_channel(cluster.endpoints()[0], creds) as ch:
        with pytest.raises(grpc.RpcError) as info:
            nodeproxy_pb2_grpc.NodeProxyStub(ch).Stats(
                nodeproxy_pb2.NodeStatsRequest(node=sim_agent.s.node_name), timeout=10
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Authorization refuses it first (no default role gives nodes the proxy's resources).
    assert 'user "system:node:nosy" cannot get nodes/stats' in (info.value.details() or "")
