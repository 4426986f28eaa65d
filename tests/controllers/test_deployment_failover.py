"""Kill -9 the active controller-manager -- and the Raft leader master with it -- in the middle
of a rolling update: the standby takes over and finishes it, within the rollout's bounds and
without creating a pod twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.api.owners import controller_ref
from hakube.client import Client, errors
from hakube.controllers.podutil import is_active
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.controllers.workloads import (
    PodBounds,
    deployment,
    images,
    namespace,
    set_image,
    wait_rolled_out,
)

pytestmark = pytest.mark.timeout(150)
NS = "failover"
CONTROLLERS = "replicaset,deployment,garbagecollector"


@pytest.fixture
def two_managers(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComponentProcs]:
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as procs:
        yield procs


def holder(client: Client) -> str:
    try:
        return client.leases.get(
            "hakube-controller-manager", namespace="kube-system"
        ).spec.holder_identity
    except errors.NotFound:
        return ""


def test_the_standby_finishes_a_rollout_after_the_leader_is_killed(
    cluster: LocalCluster,
    client: Client,
    two_managers: ComponentProcs,
    scheduler: ComponentProcs,
) -> None:
    namespace(client, NS)
    two_managers.start("cm-a", "--controllers", CONTROLLERS)
    wait_for(lambda: holder(client) == "cm-a", 20, "cm-a to lead")
    two_managers.start("cm-b", "--controllers", CONTROLLERS)
    strategy = {
        "type": "RollingUpdate",
        "rolling_update": {
            "max_surge": {"number_value": 2},
            "max_unavailable": {"number_value": 1},
        },
    }
    with FakeKubelet(client, namespaces={NS}, ready_delay=1.0) as kubelet:
        kubelet.add_node("failover-node", cpu="64", memory="256Gi")
        client.deployments.create(
            deployment("ha", NS, 6, {"app": "ha"}, "app:1", strategy=strategy)
        )
        wait_rolled_out(client, NS, "ha", timeout=60)
        with PodBounds(client, NS, "ha", max_pods=8, min_available=5) as bounds:
            generation = set_image(client, NS, "ha", "app:2")

            def midway() -> bool:
                st = client.deployments.get("ha", namespace=NS).status
                return st.observed_generation == generation and 2 <= st.updated_replicas < 6

            wait_for(midway, 30, "the rollout to be under way", interval=0.05)
            raft_leader = cluster.leader()
            two_managers.kill("cm-a")
            cluster.kill(raft_leader)
            wait_for(lambda: holder(client) == "cm-b", 20, "cm-b to take over", interval=0.1)
            wait_rolled_out(client, NS, "ha", timeout=60)
            new_pods = {name for name, image in bounds.created.items() if image == "app:2"}
    assert bounds.violations == []
    assert images(client, NS, "ha") == ["app:2"] * 6
    assert len(new_pods) == 6, f"each new pod created once, got {sorted(new_pods)}"
    owners = {
        controller_ref(p.metadata).uid for p in client.pods.list(namespace=NS).items if is_active(p)
    }
    assert len(owners) == 1
    assert "started leading" in two_managers.log("cm-b")
