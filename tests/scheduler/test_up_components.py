"""``hakube up`` runs a scheduler and a controller-manager next to its masters."""

from __future__ import annotations

import os
import re

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


def test_up_schedules_pods_and_stops_its_components(tmp_path: object) -> None:
    home = str(tmp_path)
    data, cfg = os.path.join(home, "data"), os.path.join(home, "cfg")
    up = Up(home, "--data-dir", data, "--client-config", cfg, "--nodes", "0")
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
                client.pods.create(
                    from_dict(
                        {  # type: ignore[arg-type]
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "metadata": {"name": "p"},
                            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
                        }
                    )
                )
                wait_for(
                    lambda: client.pods.get("p").spec.node_name == "n1",
                    30,
                    "the pod to be scheduled",
                )
        assert up.stop() == 0
        assert pids and not any(pid_alive(p) for p in pids)  # before close() ends leftovers
    finally:
        up.close(data)
