"""The node agent with the simulated runtime against a real 3-master cluster: registration,
lease, init containers, restart policies, config errors. Fast (no containers, in-process)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hakube.agent.agent import Agent, sim_pullable
from hakube.agent.config import AgentSettings
from hakube.agent.stats import USAGE_ANNOTATION
from hakube.client import Client
from hakube.cri.simulated import SimulatedFleet, SimulatedRuntime
from hakube.cri.v1 import api_pb2 as pb
from hakube.lifecycle import Running, stop_all
from hakube.testing.cluster import LocalCluster
from hakube.testing.join import token_for
from hakube.testing.wait import wait_for
from tests.agent.conftest import (
    StartAgent,
    condition,
    ctl_endpoints,
    first,
    get_pod,
    make_pod,
    secret,
    wait_pod,
)

pytestmark = pytest.mark.timeout(60)
IMAGE = "hakube.test/busybox:1"


def test_the_node_registers_with_capacity_labels_addresses_and_a_renewed_lease(
    client: Client, sim_agent: Agent
) -> None:
    node = client.nodes.get(sim_agent.s.node_name)
    assert node.metadata.labels["zone"] == "a"
    assert node.metadata.labels["kubernetes.io/hostname"] == sim_agent.s.node_name
    assert {"cpu", "memory", "pods"} <= set(node.status.capacity)
    assert node.status.capacity["pods"] == "110"
    assert node.status.allocatable == node.status.capacity
    assert node.status.node_info.operating_system == "linux"
    assert node.status.node_info.architecture
    assert node.status.node_info.container_runtime_version.startswith("hakube-simulated://")
    assert {(a.type, a.address) for a in node.status.addresses} >= {("InternalIP", "127.0.0.1")}
    assert node.status.daemon_endpoints.kubelet_endpoint.port == sim_agent.server.port
    conds = {c.type: c.status for c in node.status.conditions}
    assert conds == {
        "Ready": "True",
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
    }
    lease = client.leases.get(sim_agent.s.node_name, namespace="kube-node-lease")
    assert lease.spec.holder_identity == sim_agent.s.node_name
    assert lease.spec.lease_duration_seconds == 5
    assert lease.metadata.owner_references[0].uid == node.metadata.uid
    first_renew = lease.spec.renew_time
    wait_for(
        lambda: (
            client.leases.get(sim_agent.s.node_name, namespace="kube-node-lease").spec.renew_time
            != first_renew
        ),
        10,
        "the lease to be renewed",
    )


def test_the_agent_command_registers_taints_and_labels_from_flags(
    client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent(
        runtime="simulated",
        extra=[
            "--labels",
            "disk=ssd,tier=gold",
            "--register-with-taints",
            "dedicated=db:NoSchedule,spot:PreferNoSchedule",
            "--capacity-cpu",
            "8",
            "--capacity-memory",
            "32Gi",
        ],
    )
    node = client.nodes.get(agent.node)
    assert node.metadata.labels["disk"] == "ssd" and node.metadata.labels["tier"] == "gold"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        ("dedicated", "db", "NoSchedule"),
        ("spot", "", "PreferNoSchedule"),
    ]
    assert node.status.capacity["cpu"] == "8"
    assert node.status.capacity["memory"] == f"{32 * 2**20}Ki"


def test_init_containers_run_in_order_before_the_app_containers(
    client: Client, sim_agent: Agent
) -> None:
    node = sim_agent.s.node_name
    client.pods.create(
        make_pod(
            "init",
            node,
            [{"name": "app", "image": IMAGE, "command": ["sleep", "3600"]}],
            initContainers=[
                {"name": "first", "image": IMAGE, "command": ["sh", "-c", "sleep 0.3"]},
                {"name": "second", "image": IMAGE, "command": ["sh", "-c", "sleep 0.3"]},
            ],
        )
    )
    p = wait_pod(client, "init", lambda p: condition(p, "Ready") == "True", 20, "Ready")
    a, b = (s.state.terminated for s in p.status.init_container_statuses)
    assert a.reason == b.reason == "Completed"
    assert a.finished_at <= b.started_at
    assert b.finished_at <= first(p).state.running.started_at
    assert condition(p, "Initialized") == "True" and p.status.phase == "Running"


@pytest.mark.parametrize(
    ("policy", "script", "phase"),
    [
        ("Never", "exit 0", "Succeeded"),
        ("Never", "exit 2", "Failed"),
        ("OnFailure", "exit 0", "Succeeded"),
    ],
)
def test_restart_policy_decides_whether_a_finished_pod_is_done(
    client: Client, sim_agent: Agent, policy: str, script: str, phase: str
) -> None:
    name = f"done-{policy.lower()}-{script[-1]}"
    client.pods.create(
        make_pod(
            name,
            sim_agent.s.node_name,
            [{"name": "c", "image": IMAGE, "command": ["sh", "-c", script]}],
            restartPolicy=policy,
        )
    )
    p = wait_pod(client, name, lambda p: p.status.phase == phase, 20, phase)
    assert first(p).restart_count == 0
    assert first(p).state.terminated.exit_code == int(script[-1])
    assert condition(p, "Ready") == "False"


def test_on_failure_restarts_a_failed_container_until_it_succeeds(
    client: Client, sim_agent: Agent
) -> None:
    client.pods.create(
        make_pod(
            "retry",
            sim_agent.s.node_name,
            [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "exit 1"]}],
            restartPolicy="OnFailure",
        )
    )
    p = wait_pod(client, "retry", lambda p: first(p).restart_count >= 2, 20, "restarts")
    assert p.status.phase == "Running"


def test_a_failed_init_container_with_restart_never_fails_the_pod(
    client: Client, sim_agent: Agent
) -> None:
    client.pods.create(
        make_pod(
            "badinit",
            sim_agent.s.node_name,
            [{"name": "app", "image": IMAGE, "command": ["sleep", "3600"]}],
            initContainers=[{"name": "i", "image": IMAGE, "command": ["sh", "-c", "exit 5"]}],
            restartPolicy="Never",
        )
    )
    p = wait_pod(client, "badinit", lambda p: p.status.phase == "Failed", 20, "Failed")
    assert p.status.init_container_statuses[0].state.terminated.exit_code == 5
    assert first(p).state.waiting.reason == "PodInitializing"


def test_a_missing_secret_holds_the_container_until_it_exists(
    client: Client, sim_agent: Agent
) -> None:
    client.pods.create(
        make_pod(
            "needsec",
            sim_agent.s.node_name,
            [
                {
                    "name": "c",
                    "image": IMAGE,
                    "command": ["sleep", "3600"],
                    "env": [
                        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "later", "key": "p"}}}
                    ],
                }
            ],
        )
    )
    p = wait_pod(
        client,
        "needsec",
        lambda p: first(p).state.waiting.reason == "CreateContainerConfigError",
        20,
        "CreateContainerConfigError",
    )
    assert 'secret "later" not found' in first(p).state.waiting.message
    client.secrets.create(secret("later", {"p": "x"}))
    wait_pod(client, "needsec", lambda p: p.status.phase == "Running", 20, "Running")


def test_a_missing_image_waits_in_err_image_pull(client: Client, sim_agent: Agent) -> None:
    client.pods.create(
        make_pod(
            "noimg", sim_agent.s.node_name, [{"name": "c", "image": "registry.test/missing:v1"}]
        )
    )
    p = wait_pod(
        client,
        "noimg",
        lambda p: first(p).state.waiting.reason in ("ErrImagePull", "ImagePullBackOff"),
        20,
        "ErrImagePull",
    )
    assert p.status.phase == "Pending"


def test_a_deleted_pod_is_stopped_and_removed(client: Client, sim_agent: Agent) -> None:
    client.pods.create(
        make_pod(
            "bye",
            sim_agent.s.node_name,
            [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
        )
    )
    wait_pod(client, "bye", lambda p: p.status.phase == "Running", 20, "Running")
    res = client.pods.delete("bye", namespace="default")
    assert not res.deleted  # graceful: the agent finishes the deletion
    wait_for(lambda: get_pod(client, "bye") is None, 20, "pod removed")
    wait_for(
        lambda: (
            not sim_agent.cri.list_pod_sandboxes(
                labels={"hakube.io/node": sim_agent.s.node_name, "hakube.io/pod-name": "bye"}
            )
        ),
        10,
        "sandbox removed",
    )


def test_many_simulated_agents_in_one_process_share_one_cri_server(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    names = [f"fleet-{i}-{uuid.uuid4().hex[:4]}" for i in range(10)]
    token, ca_hash = token_for(cluster.endpoints())
    agents: list[Running[Agent]] = []
    with SimulatedFleet() as fleet:
        try:
            for name in names:
                fleet.add_node(SimulatedRuntime(node_name=name, pullable=sim_pullable))
                agent = Agent(
                    AgentSettings(
                        node_name=name,
                        servers=tuple(cluster.endpoints()),
                        root_dir=str(tmp_path / name),
                        runtime="simulated",
                        listen="127.0.0.1:0",
                        node_ip="127.0.0.1",
                        workers=1,
                        relist_interval=0.5,
                        token=token,
                        ca_cert_hash=ca_hash,
                    ),
                    cri=fleet.client(name),
                )
                agents.append(Running.start(agent))
            for running in agents:
                assert running.wait_ready(30), repr(running.error)
            for name in names:
                client.pods.create(
                    make_pod(
                        f"on-{name}",
                        name,
                        [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
                    )
                )
            for name in names:
                p = wait_pod(
                    client, f"on-{name}", lambda p: p.status.phase == "Running", 30, "Running"
                )
                assert p.status.container_statuses[0].container_id.startswith("hakube-simulated://")
                assert (
                    len(fleet.node(name).list_containers(pb.ListContainersRequest()).containers)
                    == 1
                )
        finally:
            stop_all(agents, 15)


def test_top_shows_what_pods_and_the_node_use(client: Client, sim_agent: Agent) -> None:
    pod = make_pod(
        "busy", sim_agent.s.node_name, [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]
    )
    pod.metadata.annotations.update(
        {"sim.hakube.io/cpu-millis": "250", "sim.hakube.io/memory-bytes": str(64 * 2**20)}
    )
    client.pods.create(pod)
    wait_pod(client, "busy", lambda p: p.status.phase == "Running", 20, "Running")
    code, out, err = ctl_endpoints(client, "top", "pods", "busy")
    assert code == 0, err
    assert out.split("\n")[1].split() == ["busy", "250m", "64Mi"]
    code, out, err = ctl_endpoints(client, "top", "nodes", sim_agent.s.node_name)
    assert code == 0, err
    assert out.split("\n")[1].split()[:2] == [sim_agent.s.node_name, "250m"]


def test_cpu_usage_of_pods_that_request_cpu_is_published_for_the_autoscaler(
    client: Client, sim_agent: Agent
) -> None:
    pod = make_pod(
        "scaled",
        sim_agent.s.node_name,
        [
            {
                "name": "c",
                "image": IMAGE,
                "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "500m"}},
            }
        ],
    )
    pod.metadata.annotations["sim.hakube.io/cpu-millis"] = "300"
    client.pods.create(pod)
    p = wait_pod(
        client,
        "scaled",
        lambda p: USAGE_ANNOTATION in p.metadata.annotations,
        20,
        "usage annotation",
    )
    assert p.metadata.annotations[USAGE_ANNOTATION] == "300m"
    assert first(p).restart_count == 0  # writing the annotation did not disturb the pod
