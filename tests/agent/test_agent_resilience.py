"""Pods outlive their masters: with every master down, the agent keeps them running, and once
the masters are back their status catches up with what happened meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakube.client import Client
from hakube.cri.v1 import api_pb2 as pb
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for
from tests.agent.conftest import first, make_pod, running_sim_agent, wait_pod

pytestmark = pytest.mark.timeout(120)
IMAGE = "hakube.test/busybox:1"


def test_pods_keep_running_while_all_masters_are_down_and_status_catches_up(
    tmp_path: Path,
) -> None:
    with (
        LocalCluster(str(tmp_path / "masters"), 3) as cluster,
        Client(cluster.endpoints(), timeout=20) as client,
        running_sim_agent(cluster.endpoints(), tmp_path) as agent,
    ):
        node = agent.s.node_name
        client.pods.create(
            make_pod(
                "short",
                node,
                [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "sleep 4"]}],
                restartPolicy="Never",
            )
        )
        client.pods.create(
            make_pod("long", node, [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}])
        )
        for name in ("short", "long"):
            wait_pod(client, name, lambda p: p.status.phase == "Running", 20, "Running")
        for m in cluster.masters:
            cluster.kill(m)

        def states() -> dict[str, int]:
            return {
                c.labels["hakube.io/pod-name"]: c.state
                for c in agent.cri.list_containers(labels={"hakube.io/node": node})
            }

        wait_for(
            lambda: states().get("short") == pb.CONTAINER_EXITED,
            15,
            "the short container to finish while the masters are down",
        )
        assert states()["long"] == pb.CONTAINER_RUNNING
        for m in cluster.masters:
            cluster.start(m)
        cluster.wait_ready(timeout=30)
        p = wait_pod(
            client,
            "short",
            lambda p: p.status.phase == "Succeeded",
            30,
            "Succeeded after the masters came back",
        )
        assert first(p).state.terminated.exit_code == 0
        long = client.pods.get("long", namespace="default")
        assert long.status.phase == "Running" and first(long).restart_count == 0
        assert states()["long"] == pb.CONTAINER_RUNNING
