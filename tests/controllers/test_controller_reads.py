"""What controllers read and queue at scale. A workload controller's sync reads the pods it owns
and its namespace's orphans, by index -- never every pod of the namespace (30,000 in one
namespace in the scale run); the pod-range allocator ignores heartbeats and does not re-read its
record for Nodes waiting in a full range.

The controller runs in this process against three real masters, so the test can watch its
informer: the pod informer's ``list`` is made to fail, and ``by_index`` counts what it hands out.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from hakube.api.owners import controller_ref
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.controllers.nodeipam import NodeIpamController
from hakube.controllers.replicaset import ReplicaSetController
from hakube.controllers.settings import ControllerSettings
from hakube.testing.fakekubelet import node_object
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


def heartbeat(client: Client, name: str, n: int) -> None:
    """The ``n``-th status heartbeat (n seconds ahead: the times have whole seconds, and a
    write that changes nothing raises no watch event)."""
    node = client.nodes.get(name)
    for c in node.status.conditions:
        if c.type == "Ready":
            c.last_heartbeat_time = rfc3339(time.time() + n)
    client.nodes.update_status(node)


def test_nodeipam_leaves_heartbeats_alone_and_a_full_range_costs_no_reads(client: Client) -> None:
    """Node status heartbeats (17 a second from 1,000 nodes) do not queue a Node that has its
    range; a Node waiting for a range in a full cluster CIDR is not re-checked against the record
    until something is released -- and then it gets the freed range."""
    settings = ControllerSettings(cluster_cidr="10.251.0.0/23", node_cidr_mask_size=24)
    with in_process(client, NodeIpamController, settings) as ctrl:
        assert isinstance(ctrl, NodeIpamController)
        reads = 0
        record = ctrl._record

        def counting() -> Any:
            nonlocal reads
            reads += 1
            return record()

        ctrl._record = counting  # type: ignore[method-assign]
        ctrl.run()
        for name in ("ipam-r0", "ipam-r1", "ipam-r2"):
            client.nodes.create(node_object(name))
        wait_for(lambda: ctrl._full_version != "", 20, "the range to be found full")
        have = [n for n in ("ipam-r0", "ipam-r1", "ipam-r2") if client.nodes.get(n).spec.pod_cidr]
        assert len(have) == 2
        waiting = ({"ipam-r0", "ipam-r1", "ipam-r2"} - set(have)).pop()
        cache = ctrl.ctx.informers.get(core_pb2.Node)
        wait_for(
            lambda: all(cache.get(n).spec.pod_cidr for n in have), 10, "the ranges in the cache"
        )
        reads = 0
        synced: list[Any] = []
        sync = ctrl.sync

        def counting_sync(key: Any) -> None:
            synced.append(key)
            sync(key)

        ctrl.sync = counting_sync  # type: ignore[method-assign]
        for n in range(1, 6):
            heartbeat(client, waiting, n)
            heartbeat(client, have[0], n)
        last = client.nodes.get(have[0]).metadata.resource_version
        # Handlers run in revision order: once the last beat is cached, every beat was handled.
        wait_for(lambda: cache.get(have[0]).metadata.resource_version == last, 10, "the beats")
        wait_for(lambda: ("", waiting) in synced, 10, "the waiting node's sync")
        assert ("", have[0]) not in synced, "a heartbeat of a node that has its range was synced"
        assert reads == 0, "a node waiting in a full range re-read the record"
        client.nodes.delete(have[0])
        wait_for(
            lambda: bool(client.nodes.get(waiting).spec.pod_cidr), 20, "the freed range reused"
        )
    for name in ("ipam-r0", "ipam-r1", "ipam-r2"):
        try:
            client.nodes.delete(name)
        except errors.NotFound:
            pass
