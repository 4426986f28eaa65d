"""``hakube up --nodes 2``: a cluster with two (simulated) node agents that run pods, that
come back when they die, and that stop with it."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest
import yaml

from hakube.client import Client
from hakube.testing.wait import wait_for
from tests.agent.conftest import make_pod, node_ready, wait_pod
from tests.cli.test_up import Up

pytestmark = pytest.mark.timeout(150)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read().lower()
    except OSError:
        return False


def run_on_node_2(c: Client, name: str) -> None:
    """A pod bound to node-2, run by its agent."""
    sleeper = [{"name": "c", "image": "busybox:1", "command": ["sleep", "3600"]}]
    c.pods.create(make_pod(name, "node-2", sleeper))
    wait_pod(c, name, lambda p: p.status.phase == "Running", 30, "Running")


def test_up_with_nodes_runs_agents_that_run_pods_restart_and_stop_with_the_cluster(
    tmp_path: Path,
) -> None:
    home = str(tmp_path)
    data, cfg = os.path.join(home, "data"), os.path.join(home, "cfg")
    up = Up(
        home,
        "--masters",
        "1",
        "--nodes",
        "2",
        "--data-dir",
        data,
        "--client-config",
        cfg,
        "--restart-delay",
        "0.5",
    )
    try:
        up.expect("1 masters ready")
        line = up.expect("node-2  agent (simulated)")
        pid = int(line.split("pid ")[1].split()[0])
        assert len(yaml.safe_load(open(cfg))["servers"]) == 1
        with Client.from_config(cfg, timeout=20) as c:
            for n in ("node-1", "node-2"):
                wait_for(functools.partial(node_ready, c, n), 30, f"{n} Ready")
            run_on_node_2(c, "up-pod")
            # With the scheduler and controllers hakube up also runs, a Deployment's pods get
            # placed on the agents' nodes and run there.
            c.apply(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "up-web", "namespace": "default"},
                    "spec": {
                        "replicas": 3,
                        "selector": {"matchLabels": {"app": "up-web"}},
                        "template": {
                            "metadata": {"labels": {"app": "up-web"}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "c",
                                        "image": "busybox:1",
                                        "command": ["sleep", "3600"],
                                    }
                                ]
                            },
                        },
                    },
                }
            )

            def deployed() -> bool:
                pods = c.pods.list(namespace="default", label_selector="app=up-web").items
                return len(pods) == 3 and all(p.status.phase == "Running" for p in pods)

            wait_for(deployed, 60, "3 pods of the Deployment Running")
            nodes = {
                p.spec.node_name
                for p in c.pods.list(namespace="default", label_selector="app=up-web").items
            }
            assert nodes <= {"node-1", "node-2"}
            # An agent that dies is started again by hakube up's supervisor, with back-off.
            assert int(open(os.path.join(data, "node-2.pid")).read()) == pid
            os.kill(pid, signal.SIGKILL)
            up.expect("agent node-2 stopped (killed by signal 9); restarting in 0.5s")
            line = up.expect("agent node-2 started again")
            new_pid = int(line.split("pid ")[1].rstrip(")"))
            assert new_pid != pid and alive(new_pid)
            assert int(open(os.path.join(data, "node-2.pid")).read()) == new_pid
            # The new agent runs the node: a pod bound to node-2 now runs.
            run_on_node_2(c, "up-pod-2")
        assert up.stop(signal.SIGINT) == 0
        assert not alive(new_pid)
    finally:
        up.close(data)
