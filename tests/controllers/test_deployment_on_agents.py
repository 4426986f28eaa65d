"""A Deployment end to end on the real components: the scheduler places the pods, node agents
(simulated container runtime) run them and report readiness, the controller-manager rolls the
Deployment to a new image within its bounds, and a foreground delete takes everything away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hakube.client import Client, errors
from hakube.controllers.podutil import is_ready
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for
from tests.agent.conftest import running_sim_agent
from tests.controllers.workloads import (
    PodBounds,
    deployment,
    images,
    namespace,
    pods,
    set_image,
    wait_rolled_out,
)

pytestmark = pytest.mark.timeout(180)
NS = "e2e"
IMAGE = "hakube.test/busybox"


@pytest.fixture(scope="module")
def nodes(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """A scheduler, a controller-manager and two simulated-runtime node agents."""
    d = tmp_path_factory.mktemp("stack")
    eps = cluster.endpoints()
    with (
        ComponentProcs("scheduler", eps, str(d)) as sched,
        ComponentProcs("controller-manager", eps, str(d)) as cms,
    ):
        sched.start("sched-a")
        cms.start("cm-a", "--controllers", "replicaset,deployment,garbagecollector")
        with running_sim_agent(eps, Path(d)) as a1, running_sim_agent(eps, Path(d)) as a2:
            yield [a1, a2]


def test_a_deployment_rolls_out_on_agents_and_is_deleted_in_the_foreground(
    client: Client, nodes: list[Any]
) -> None:
    namespace(client, NS)
    d = deployment(
        "web",
        NS,
        4,
        {"app": "web"},
        f"{IMAGE}:1",
        strategy={
            "type": "RollingUpdate",
            "rolling_update": {
                "max_surge": {"number_value": 1},
                "max_unavailable": {"number_value": 1},
            },
        },
    )
    c = d.spec.template.spec.containers[0]
    c.command.extend(["sleep", "3600"])
    d.spec.template.spec.termination_grace_period_seconds = 1
    client.deployments.create(d)
    wait_rolled_out(client, NS, "web", timeout=60)
    names = {n.s.node_name for n in nodes}
    placed = pods(client, NS)
    assert {p.spec.node_name for p in placed} <= names
    assert all(p.status.phase == "Running" and is_ready(p) for p in placed)
    with PodBounds(client, NS, "web", max_pods=5, min_available=3) as bounds:
        set_image(client, NS, "web", f"{IMAGE}:2")
        wait_rolled_out(client, NS, "web", timeout=60)
    assert bounds.violations == []
    assert images(client, NS, "web") == [f"{IMAGE}:2"] * 4
    client.deployments.delete("web", namespace=NS, propagation_policy="Foreground")

    def gone() -> bool:
        try:
            client.deployments.get("web", namespace=NS)
        except errors.NotFound:
            return True
        return False

    wait_for(gone, 60, "the deployment to be deleted in the foreground", interval=0.2)
    assert [p.metadata.name for p in pods(client, NS)] == []
