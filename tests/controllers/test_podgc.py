"""Pod GC: pods on nodes that are gone, and terminated pods beyond the threshold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for
from tests.controllers.workloads import namespace, pods, template

pytestmark = pytest.mark.timeout(120)
NS = "podgc-test"


@pytest.fixture(scope="module")
def podgc(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComponentProcs]:
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as procs:
        procs.start(
            "cm-a",
            "--controllers",
            "podgc",
            "--pod-gc-period",
            "0.3",
            "--pod-gc-orphan-delay",
            "1",
            "--terminated-pod-gc-threshold",
            "3",
        )
        yield procs


def pod(name: str, node: str = "") -> pod_pb2.Pod:
    t = template({"app": "gc"})
    p = pod_pb2.Pod(metadata={"name": name, "namespace": NS, **t["metadata"]}, spec=t["spec"])
    p.spec.node_name = node
    return p


def names(client: Client) -> set[str]:
    return {p.metadata.name for p in pods(client, NS)}


def test_pods_on_a_deleted_node_are_removed(client: Client, podgc: ComponentProcs) -> None:
    namespace(client, NS)
    client.nodes.create(core_pb2.Node(metadata={"name": "here"}))
    client.nodes.create(core_pb2.Node(metadata={"name": "leaving"}))
    client.pods.create(pod("on-here", "here"))
    client.pods.create(pod("on-leaving", "leaving"))
    client.pods.create(pod("never-had-one", "nowhere"))
    wait_for(
        lambda: "never-had-one" not in names(client),
        20,
        "the pod bound to a node that never existed to go",
        interval=0.1,
    )
    assert {"on-here", "on-leaving"} <= names(client)
    client.nodes.delete("leaving")
    wait_for(
        lambda: "on-leaving" not in names(client),
        20,
        "the pod of the deleted node to go",
        interval=0.1,
    )
    assert "on-here" in names(client)


def test_terminated_pods_beyond_the_threshold_are_removed(
    client: Client, podgc: ComponentProcs
) -> None:
    namespace(client, NS)
    for i in range(5):
        p = client.pods.create(pod(f"done-{i}"))
        p.status.phase = "Succeeded" if i % 2 else "Failed"
        client.pods.update_status(p)
    client.pods.create(pod("still-running"))

    def terminated() -> set[str]:
        return {
            p.metadata.name for p in pods(client, NS) if p.status.phase in ("Succeeded", "Failed")
        }

    wait_for(lambda: len(terminated()) == 3, 20, "terminated pods to be cut to 3", interval=0.1)
    assert "still-running" in names(client)
    assert "done-4" in terminated(), "the newest are kept"
