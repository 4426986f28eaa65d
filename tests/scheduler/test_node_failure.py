"""A node whose agent dies: after the (shortened) grace and toleration times its pods are
evicted, the ReplicaSet replaces them and the scheduler puts the replacements on the live nodes.

Everything is real except the container runtime: three masters, three ``hakube agent`` processes
(simulated runtime), a ``hakube scheduler`` and a ``hakube controller-manager``.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from hakube.api.convert import from_dict
from hakube.client import Client
from hakube.controllers.nodelifecycle import UNREACHABLE
from hakube.local.agents import LocalAgents
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.join import token_for
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(180)

GRACE, TOLERATION = 3, 2


@pytest.fixture
def agents(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    d = str(tmp_path_factory.mktemp("agents"))
    token, ca_hash = token_for(cluster.endpoints())
    extra = [
        "--node-lease-interval",
        "0.5",
        "--node-status-interval",
        "1",
        "--capacity-cpu",
        "4",
        "--capacity-memory",
        "8Gi",
    ]
    local = LocalAgents(d, cluster.endpoints(), token=token, ca_hash=ca_hash, extra_args=extra)
    try:
        yield {a.name: a.proc for a in local.start(3) if a.proc is not None}
    finally:
        local.stop()


def running(client: Client) -> dict[str, str]:
    """Live (not terminating) Running pods of the ReplicaSet: name -> node."""
    return {
        p.metadata.name: p.spec.node_name
        for p in client.pods.list(label_selector="app=web").items
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    }


def test_pods_of_a_dead_node_come_back_elsewhere(
    cluster: LocalCluster,
    client: Client,
    agents: dict[str, subprocess.Popen[bytes]],
    schedulers: ComponentProcs,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    wait_for(lambda: len(client.nodes.list().items) == 3, 30, "three agents to register")
    schedulers.start("s1")
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as cms:
        cms.start(
            "cm",
            "--node-monitor-grace-period",
            str(GRACE),
            "--node-monitor-period",
            "0.2",
            "--default-unreachable-toleration-seconds",
            str(TOLERATION),
        )
        client.replicasets.create(
            from_dict(
                {  # type: ignore[arg-type]
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {"name": "web"},
                    "spec": {
                        "replicas": 6,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {
                                "terminationGracePeriodSeconds": 1,
                                "containers": [
                                    {
                                        "name": "c",
                                        "image": "busybox:1",
                                        "resources": {"requests": {"cpu": "100m"}},
                                    }
                                ],
                            },
                        },
                    },
                }
            )
        )
        wait_for(lambda: len(running(client)) == 6, 60, "six Running replicas")
        before = running(client)
        victim = max(
            ("node-1", "node-2", "node-3"), key=lambda n: sum(1 for v in before.values() if v == n)
        )
        lost = {p for p, n in before.items() if n == victim}
        assert lost, "the scheduler spreads replicas, so every node has some"
        agents[victim].send_signal(signal.SIGKILL)
        agents[victim].wait(10)
        killed = time.monotonic()

        def replaced() -> bool:
            now = running(client)
            return len(now) == 6 and not set(now) & lost and victim not in now.values()

        wait_for(replaced, 60, f"the pods of {victim} to be replaced on the live nodes")
        took = time.monotonic() - killed
        print(f"pods of the dead node replaced {took:.1f} s after the agent was killed")
        # Not before grace + toleration, counted from the node's last heartbeat, which may be
        # up to one status interval (1 s) before the kill.
        assert took >= GRACE + TOLERATION - 1.5
        node = client.nodes.get(victim)
        assert UNREACHABLE in {t.key for t in node.spec.taints}
        assert next(c.status for c in node.status.conditions if c.type == "Ready") == "Unknown"
