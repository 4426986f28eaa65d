"""Once its stop has begun, the agent prepares (mounts) no pod volume: nobody would unmount it
(hakube.agent.gate). The gate's own rules, then a real in-process agent (simulated runtime,
real masters) asked to sync a pod after it stopped."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from hakube.agent import volumes
from hakube.agent.gate import StopGate
from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from tests.agent.conftest import condition, make_pod, running_sim_agent, wait_pod

pytestmark = pytest.mark.timeout(60)
APP = [{"name": "app", "image": "hakube.test/busybox:1", "command": ["sleep", "3600"]}]


def test_closing_the_gate_waits_for_those_inside_and_admits_no_one_after() -> None:
    gate = StopGate()
    assert gate.enter()
    assert not gate.close(0.05)  # one inside: not drained within the timeout
    assert not gate.enter() and gate.closed
    closed = threading.Event()

    def close() -> None:
        if gate.close(10):
            closed.set()

    t = threading.Thread(target=close)
    t.start()
    time.sleep(0.05)
    assert not closed.is_set()  # still waiting for the one inside
    gate.leave()
    t.join(10)
    assert closed.is_set()


def test_an_agent_whose_stop_began_prepares_no_pod_volume(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    with running_sim_agent(cluster.endpoints(), tmp_path, cluster) as agent:
        scratch = [{"name": "scratch", "emptyDir": {}}]
        client.pods.create(make_pod("gated", agent.s.node_name, APP, volumes=scratch))
        pod = wait_pod(client, "gated", lambda p: condition(p, "Ready") == "True", 20, "Ready")
        uid = pod.metadata.uid
        pod_dir = volumes.pod_dir(agent.s.root_dir, uid)
        assert (pod_dir / "volumes" / "scratch").is_dir()
        # What the stop does first; the agent's workers still run (a resync, a watch event).
        assert agent.syncer is not None
        assert agent.syncer.volume_gate.close(5)
        shutil.rmtree(pod_dir)
        assert agent.syncer.sync(uid) is None  # the pod is known, its sandbox ready
        assert not pod_dir.exists()
        client.pods.delete("gated")


def test_stopping_an_agent_closes_its_volume_gate(cluster: LocalCluster, tmp_path: Path) -> None:
    with running_sim_agent(cluster.endpoints(), tmp_path, cluster) as agent:
        assert agent.syncer is not None and not agent.syncer.volume_gate.closed
    assert agent.syncer.volume_gate.closed
