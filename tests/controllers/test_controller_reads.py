"""What a workload controller reads per sync: the pods it owns and its namespace's orphans, by
index -- never every pod of the namespace (30,000 in one namespace in the scale run).

The controller runs in this process against three real masters, so the test can watch its
informer: the pod informer's ``list`` is made to fail, and ``by_index`` counts what it hands out.
"""

from __future__ import annotations

from typing import Any

import pytest

from hakube.api.owners import controller_ref
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.controllers.replicaset import ReplicaSetController
from hakube.testing.wait import wait_for
from tests.controllers.workloads import in_process, namespace, replicaset

pytestmark = pytest.mark.timeout(120)
NS = "rs-reads"
FOREIGN = 40


def labelled_pod(name: str, owner_uid: str = "") -> pod_pb2.Pod:
    pod = pod_pb2.Pod(
        metadata={"name": name, "namespace": NS, "labels": {"app": "reads"}},
        spec={"containers": [{"name": "app", "image": "test/app:1"}]},
    )
    if owner_uid:
        pod.metadata.owner_references.add(
            api_version="apps/v1", kind="ReplicaSet", name="other", uid=owner_uid, controller=True
        )
    return pod


def owner_uid(pod: pod_pb2.Pod) -> str:
    ref = controller_ref(pod.metadata)
    return "" if ref is None else str(ref.uid)


def test_a_replicaset_sync_reads_only_its_own_pods_and_the_orphans(client: Client) -> None:
    namespace(client, NS)
    for i in range(FOREIGN):  # matching labels, but another controller's
        client.pods.create(labelled_pod(f"foreign-{i}", owner_uid="uid-of-another-controller"))
    client.pods.create(labelled_pod("orphan"))
    rs = client.replicasets.create(replicaset("mine", NS, 3, {"app": "reads"}))
    with in_process(client, ReplicaSetController) as ctrl:
        assert isinstance(ctrl, ReplicaSetController)
        pods = ctrl.ctx.informers.get(pod_pb2.Pod)
        wait_for(lambda: len(pods.keys()) >= FOREIGN + 1, 20, "the pods in the cache")
        handed: list[int] = []
        by_index = pods.by_index

        def counting(name: str, value: str) -> list[Any]:
            out = by_index(name, value)
            handed.append(len(out))
            return out

        def no_scan() -> list[Any]:
            raise AssertionError("a ReplicaSet sync listed every cached pod")

        pods.by_index = counting  # type: ignore[method-assign]
        pods.list = no_scan  # type: ignore[method-assign]
        ctrl.sync((NS, "mine"))
        assert sum(handed) == 1, f"the sync read {sum(handed)} pods, not just the orphan"
        wait_for(
            lambda: len(ctrl.ctx.informers.by_owner(pod_pb2.Pod).owned(rs)) == 3,
            20,
            "the adopted and created pods",
        )
        handed.clear()
        ctrl.sync((NS, "mine"))
        assert sum(handed) == 3, f"the second sync read {sum(handed)} pods, not its 3"
    live = {p.metadata.name: owner_uid(p) for p in client.pods.list(namespace=NS).items}
    assert live["orphan"] == rs.metadata.uid  # adopted
    assert sum(1 for uid in live.values() if uid == rs.metadata.uid) == 3
    assert all(live[f"foreign-{i}"] == "uid-of-another-controller" for i in range(FOREIGN))
