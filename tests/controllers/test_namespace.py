"""Deleting a namespace removes what is in it, then the namespace -- across a failover."""

from __future__ import annotations

import pytest

from hakube.api.v1 import core_pb2
from hakube.client import Client, errors
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def fill(client: Client, ns: str, n: int) -> None:
    client.namespaces.create(core_pb2.Namespace(metadata={"name": ns}))
    for i in range(n):
        client.configmaps.create(
            core_pb2.ConfigMap(metadata={"name": f"cm{i}", "namespace": ns}, data={"k": str(i)})
        )
    client.secrets.create(core_pb2.Secret(metadata={"name": "s", "namespace": ns}))


def gone(client: Client, ns: str) -> bool:
    try:
        client.namespaces.get(ns)
    except errors.NotFound:
        return True
    return False


def holder(client: Client) -> str:
    try:
        lease = client.leases.get("hakube-controller-manager", namespace="kube-system")
    except errors.NotFound:
        return ""
    return lease.spec.holder_identity


def test_a_deleted_namespace_is_emptied_then_removed(
    client: Client, managers: ComponentProcs
) -> None:
    fill(client, "doomed", 5)
    client.delete("Namespace", "doomed")
    assert client.namespaces.get("doomed").status.phase == "Terminating"
    managers.start("cm-a", "--controllers", "namespace")
    wait_for(lambda: gone(client, "doomed"), 30, "namespace doomed to be removed")
    assert client.configmaps.list(namespace="doomed").items == []


def test_the_standby_finishes_after_the_leader_is_killed(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a")
    wait_for(lambda: holder(client) == "cm-a", 20, "cm-a to lead")
    managers.start("cm-b")
    managers.kill("cm-a")
    fill(client, "doomed2", 3)
    client.delete("Namespace", "doomed2")
    wait_for(lambda: gone(client, "doomed2"), 30, "the standby to remove namespace doomed2")
    assert holder(client) == "cm-b"
    assert "started leading" in managers.log("cm-b")
