"""Cascading deletion: background, foreground and orphan, through the API and hakubectl."""

from __future__ import annotations

import io

import pytest

from hakube.api.owners import controller_ref
from hakube.api.v1 import core_pb2
from hakube.cli import ctl
from hakube.client import Client, errors
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.controllers.workloads import (
    active_owned,
    cm,  # noqa: F401 - fixture
    deployment,
    fake_kubelet,
    pods,
    replicaset,
    wait_rolled_out,
    wait_settled,
)

pytestmark = pytest.mark.timeout(120)
NS = "gc-test"

kubelet = fake_kubelet(NS)


def exists(client: Client, kind: str, name: str) -> bool:
    try:
        client.get(kind, name, namespace=NS)
    except errors.NotFound:
        return False
    return True


def owned_pods(client: Client, uid: str) -> list[str]:
    return [
        p.metadata.name
        for p in pods(client, NS)
        if any(r.uid == uid for r in p.metadata.owner_references)
    ]


def test_background_deletion_removes_dependents_of_any_kind(
    client: Client, kubelet: FakeKubelet
) -> None:
    rs = client.replicasets.create(replicaset("bg", NS, 3, {"app": "bg"}))
    wait_settled(client, rs, 3)
    owner = client.secrets.create(core_pb2.Secret(metadata={"name": "owner", "namespace": NS}))
    ref = {"api_version": "v1", "kind": "Secret", "name": "owner", "uid": owner.metadata.uid}
    client.configmaps.create(
        core_pb2.ConfigMap(metadata={"name": "dep", "namespace": NS, "owner_references": [ref]})
    )
    client.replicasets.delete("bg", namespace=NS)
    client.secrets.delete("owner", namespace=NS)
    wait_for(
        lambda: not owned_pods(client, rs.metadata.uid), 30, "the pods of bg to go", interval=0.1
    )
    wait_for(
        lambda: not exists(client, "ConfigMap", "dep"), 30, "configmap dep to go", interval=0.1
    )


def test_foreground_deletion_removes_the_owner_last(client: Client, kubelet: FakeKubelet) -> None:
    rs = client.replicasets.create(replicaset("fg", NS, 3, {"app": "fg"}))
    wait_settled(client, rs, 3)
    out = io.StringIO()
    code = ctl.main(
        ["-s", ",".join(client.servers), "-n", NS, "delete", "rs", "fg", "--cascade=foreground"],
        out=out,
    )
    assert code == 0 and "deletion requested" in out.getvalue()
    assert exists(client, "ReplicaSet", "fg")

    def done() -> bool:
        owner_there = exists(client, "ReplicaSet", "fg")
        left = owned_pods(client, rs.metadata.uid)
        assert owner_there or not left, "the owner went while dependents were still there"
        return not owner_there

    wait_for(done, 30, "replicaset fg to be deleted in the foreground", interval=0.05)
    assert not owned_pods(client, rs.metadata.uid)


def test_orphan_deletion_keeps_the_pods_without_owner(client: Client, kubelet: FakeKubelet) -> None:
    rs = client.replicasets.create(replicaset("orph", NS, 2, {"app": "orph"}))
    wait_settled(client, rs, 2)
    names = {p.metadata.name for p in active_owned(client, NS, rs.metadata.uid)}
    out = io.StringIO()
    code = ctl.main(
        [
            "-s",
            ",".join(client.servers),
            "-n",
            NS,
            "delete",
            "replicaset",
            "orph",
            "--cascade=orphan",
            "--wait",
        ],
        out=out,
    )
    assert code == 0, out.getvalue()
    assert not exists(client, "ReplicaSet", "orph")
    for name in names:
        pod = client.pods.get(name, namespace=NS)
        assert not pod.metadata.deletion_timestamp
        assert list(pod.metadata.owner_references) == []
    # A new ReplicaSet with the same selector adopts the orphans instead of making new pods.
    again = client.replicasets.create(replicaset("orph2", NS, 2, {"app": "orph"}))
    wait_settled(client, again, 2)
    adopted = {p.metadata.name for p in active_owned(client, NS, again.metadata.uid)}
    assert adopted == names
    assert all(controller_ref(client.pods.get(n, namespace=NS).metadata) for n in names)


def test_a_deployment_deleted_in_the_foreground_goes_after_its_replicasets_and_pods(
    client: Client, kubelet: FakeKubelet
) -> None:
    client.deployments.create(deployment("fgd", NS, 2, {"app": "fgd"}))
    wait_rolled_out(client, NS, "fgd")
    d = client.deployments.get("fgd", namespace=NS)
    rs_names = [
        rs.metadata.name
        for rs in client.replicasets.list(namespace=NS).items
        if any(r.uid == d.metadata.uid for r in rs.metadata.owner_references)
    ]
    assert len(rs_names) == 1
    client.deployments.delete("fgd", namespace=NS, propagation_policy="Foreground")

    def done() -> bool:
        owner_there = exists(client, "Deployment", "fgd")
        rs_there = exists(client, "ReplicaSet", rs_names[0])
        left = [p for p in pods(client, NS) if p.metadata.labels.get("app") == "fgd"]
        assert owner_there or not (rs_there or left), "the deployment went before its dependents"
        assert rs_there or not left, "the replicaset went before its pods"
        return not owner_there

    wait_for(done, 30, "deployment fgd to be deleted in the foreground", interval=0.05)
