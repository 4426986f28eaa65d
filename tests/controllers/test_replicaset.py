"""ReplicaSet controller against a real three-master cluster, pods "run" by the fake kubelet."""

from __future__ import annotations

import time

import pytest

from hakube.api.owners import controller_ref
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.controllers.workloads import (
    active_owned,
    cm,  # noqa: F401 - fixture
    fake_kubelet,
    namespace,
    pods,
    replicaset,
    template,
    wait_settled,
)

pytestmark = pytest.mark.timeout(120)
NS = "rs-test"

kubelet = fake_kubelet(NS)


def test_a_replicaset_replaces_a_deleted_pod(client: Client, kubelet: FakeKubelet) -> None:
    rs = client.replicasets.create(replicaset("keep", NS, 3, {"app": "keep"}))
    wait_settled(client, rs, 3)
    owned = active_owned(client, NS, rs.metadata.uid)
    for p in owned:
        assert p.metadata.generate_name == "keep-" and p.metadata.name.startswith("keep-")
        ref = controller_ref(p.metadata)
        assert ref is not None and ref.kind == "ReplicaSet" and ref.name == "keep"
        assert ref.block_owner_deletion
    victim = owned[0].metadata.name
    client.pods.delete(victim, namespace=NS)
    wait_settled(client, rs, 3)
    names = {p.metadata.name for p in active_owned(client, NS, rs.metadata.uid)}
    assert victim not in names and len(names) == 3


def test_scaling_down_removes_a_not_ready_pod_first(client: Client, kubelet: FakeKubelet) -> None:
    rs = client.replicasets.create(replicaset("scale", NS, 2, {"app": "scale"}))
    wait_settled(client, rs, 2)
    rs = client.replicasets.get("scale", namespace=NS)
    rs.spec.replicas = 5
    client.replicasets.update(rs)
    wait_settled(client, rs, 5)
    owned = active_owned(client, NS, rs.metadata.uid)
    sick = owned[2]
    for c in sick.status.conditions:
        if c.type == "Ready":
            c.status = "False"
    client.pods.update_status(sick)
    wait_for(
        lambda: client.replicasets.get("scale", namespace=NS).status.ready_replicas == 4,
        20,
        "the status to count 4 ready pods",
        interval=0.1,
    )
    rs = client.replicasets.get("scale", namespace=NS)
    rs.spec.replicas = 4
    client.replicasets.update(rs)
    wait_settled(client, rs, 4)
    left = {p.metadata.name for p in active_owned(client, NS, rs.metadata.uid)}
    assert sick.metadata.name not in left
    rs = client.replicasets.get("scale", namespace=NS)
    rs.spec.replicas = 1
    client.replicasets.update(rs)
    wait_settled(client, rs, 1)


def test_orphans_are_adopted_and_strays_released(client: Client, kubelet: FakeKubelet) -> None:
    t = template({"app": "adopt"})
    orphan = client.pods.create(
        pod_pb2.Pod(metadata={"name": "orphan", "namespace": NS, **t["metadata"]}, spec=t["spec"])
    )
    rs = client.replicasets.create(replicaset("adopt", NS, 2, {"app": "adopt"}))
    wait_settled(client, rs, 2)
    owned = {p.metadata.name for p in active_owned(client, NS, rs.metadata.uid)}
    assert "orphan" in owned, "the matching orphan is adopted, not replaced"
    assert orphan.metadata.uid == client.pods.get("orphan", namespace=NS).metadata.uid
    stray = client.pods.get("orphan", namespace=NS)
    stray.metadata.labels["app"] = "elsewhere"
    client.pods.update(stray)
    wait_for(
        lambda: not client.pods.get("orphan", namespace=NS).metadata.owner_references,
        20,
        "the pod that stopped matching to be released",
        interval=0.1,
    )
    wait_settled(client, rs, 2)
    assert "orphan" not in {p.metadata.name for p in active_owned(client, NS, rs.metadata.uid)}
    names = {p.metadata.name for p in pods(client, NS)}
    assert "orphan" in names


def test_pods_count_as_available_only_after_min_ready_seconds(
    client: Client, kubelet: FakeKubelet
) -> None:
    rs = client.replicasets.create(replicaset("slow", NS, 2, {"app": "slow"}, min_ready_seconds=3))

    def status() -> tuple[int, int, int]:
        s = client.replicasets.get("slow", namespace=NS).status
        return s.ready_replicas, s.available_replicas, s.fully_labeled_replicas

    wait_for(lambda: status()[0] == 2, 20, "both pods to be ready", interval=0.1)
    ready_at = time.monotonic()
    assert status()[1] == 0, "ready pods are not available before minReadySeconds"
    wait_for(lambda: status()[1] == 2, 20, "both pods to become available", interval=0.1)
    assert time.monotonic() - ready_at >= 1.0
    assert status()[2] == 2
    wait_settled(client, rs, 2)


def test_refused_creates_are_reported_on_the_replicaset(
    client: Client, kubelet: FakeKubelet
) -> None:
    ns = namespace(client, "rs-refused")
    rs = client.replicasets.create(replicaset("refused", ns, 0, {"app": "refused"}))
    client.delete("Namespace", ns)  # not empty: stays Terminating (no namespace controller here)
    assert client.namespaces.get(ns).status.phase == "Terminating"
    rs = client.replicasets.get("refused", namespace=ns)
    rs.spec.replicas = 5
    client.replicasets.update(rs)

    def failure() -> bool:
        cur = client.replicasets.get("refused", namespace=ns)
        return any(
            c.type == "ReplicaFailure" and c.status == "True" and c.reason == "FailedCreate"
            for c in cur.status.conditions
        )

    wait_for(failure, 20, "a ReplicaFailure condition", interval=0.1)
    cur = client.replicasets.get("refused", namespace=ns)
    assert "being terminated" in cur.status.conditions[0].message
    assert pods(client, ns) == []
