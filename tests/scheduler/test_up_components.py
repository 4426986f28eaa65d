"""``hakube up`` runs a scheduler and a controller-manager next to its masters."""

from __future__ import annotations

import os
import re
import signal

import pytest

from hakube.api.convert import from_dict
from hakube.client import Client, errors
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.cli.test_up import Up, pid_alive

pytestmark = pytest.mark.timeout(120)


def holder(client: Client, lease: str) -> str:
    try:
        return client.leases.get(lease, namespace="kube-system").spec.holder_identity
    except errors.NotFound:
        return ""


def schedule(client: Client, name: str) -> None:
    """Create a pod and wait for the scheduler to bind it to n1."""
    client.pods.create(
        from_dict(
            {  # type: ignore[arg-type]
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            }
        )
    )
    wait_for(lambda: client.pods.get(name).spec.node_name == "n1", 30, f"{name} scheduled")


def test_up_schedules_pods_restarts_a_dead_component_and_stops_them(tmp_path: object) -> None:
    home = str(tmp_path)
    data, cfg = os.path.join(home, "data"), os.path.join(home, "cfg")
    up = Up(
        home, "--data-dir", data, "--client-config", cfg, "--nodes", "0", "--restart-delay", "0.5"
    )
    pids: list[int] = []
    try:
        up.expect("3 masters ready")
        for name in ("scheduler", "controller-manager"):
            line = up.expect(f"{name}  pid")
            pids.append(int(re.search(r"pid (\d+)", line).group(1)))  # type: ignore[union-attr]
        with Client.from_config(cfg, timeout=20) as client:
            wait_for(lambda: holder(client, "hakube-scheduler"), 30, "a scheduler to lead")
            wait_for(
                lambda: holder(client, "hakube-controller-manager"),
                30,
                "a controller-manager to lead",
            )
            with FakeKubelet(client, run_pods=False) as sim:
                sim.add_node("n1")
                schedule(client, "p")
                # A component that dies is started again by hakube up's supervisor; with the
                # same identity it takes its lease back and schedules again.
                assert int(open(os.path.join(data, "scheduler.pid")).read()) == pids[0]
                os.kill(pids[0], signal.SIGKILL)
                up.expect("component scheduler stopped (killed by signal 9); restarting in 0.5s")
                line = up.expect("component scheduler started again")
                new_pid = int(re.search(r"pid (\d+)", line).group(1))  # type: ignore[union-attr]
                assert new_pid != pids[0] and pid_alive(new_pid)
                pids.append(new_pid)
                schedule(client, "p2")
        assert up.stop() == 0
        assert pids and not any(pid_alive(p) for p in pids)  # before close() ends leftovers
    finally:
        up.close(data)
