"""Helpers for the workload controller tests (ReplicaSet, Deployment, GC, pod GC)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hakube.api.v1 import core_pb2, pod_pb2, workloads_pb2
from hakube.client import Client, errors
from hakube.controllers.podutil import controller_ref, is_active, is_ready
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.standin_kubelet import StandInKubelet
from hakube.testing.wait import wait_for

CONTROLLERS = "replicaset,garbagecollector"
FLAGS: list[str] = []


@pytest.fixture(scope="module")
def cm(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComponentProcs]:
    """One controller-manager for the whole module (tests use their own namespaces)."""
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as procs:
        procs.start("cm-a", "--controllers", CONTROLLERS, *FLAGS)
        yield procs


def namespace(client: Client, name: str) -> str:
    try:
        client.namespaces.create(core_pb2.Namespace(metadata={"name": name}))
    except errors.AlreadyExists:
        pass
    return name


def template(labels: dict[str, str], image: str = "test/app:1") -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def replicaset(
    name: str, ns: str, replicas: int, labels: dict[str, str], **spec: Any
) -> workloads_pb2.ReplicaSet:
    return workloads_pb2.ReplicaSet(
        metadata={"name": name, "namespace": ns},
        spec={
            "replicas": replicas,
            "selector": {"match_labels": labels},
            "template": template(labels),
            **spec,
        },
    )


def deployment(
    name: str, ns: str, replicas: int, labels: dict[str, str], image: str = "app:1", **spec: Any
) -> workloads_pb2.Deployment:
    return workloads_pb2.Deployment(
        metadata={"name": name, "namespace": ns},
        spec={
            "replicas": replicas,
            "selector": {"match_labels": labels},
            "template": template(labels, image),
            **spec,
        },
    )


def pods(client: Client, ns: str) -> list[pod_pb2.Pod]:
    return client.pods.list(namespace=ns).items


def active_owned(client: Client, ns: str, owner_uid: str) -> list[pod_pb2.Pod]:
    return [
        p
        for p in pods(client, ns)
        if is_active(p) and (ref := controller_ref(p.metadata)) is not None and ref.uid == owner_uid
    ]


def settled(client: Client, rs: workloads_pb2.ReplicaSet, n: int) -> bool:
    """``n`` ready pods owned, and a status that says so for the current generation."""
    cur = client.replicasets.get(rs.metadata.name, namespace=rs.metadata.namespace)
    owned = active_owned(client, rs.metadata.namespace, cur.metadata.uid)
    s = cur.status
    return (
        len(owned) == n
        and all(is_ready(p) for p in owned)
        and s.replicas == n
        and s.ready_replicas == n
        and s.available_replicas == n
        and s.observed_generation == cur.metadata.generation
    )


def wait_settled(client: Client, rs: workloads_pb2.ReplicaSet, n: int, timeout: float = 30) -> None:
    wait_for(
        lambda: settled(client, rs, n),
        timeout,
        f"replicaset {rs.metadata.name} to settle at {n} ready pods",
        interval=0.1,
    )


def standin_kubelet(ns: str, **kw: Any) -> Any:
    """A module fixture: namespace ``ns`` with a stand-in kubelet running its pods (and the
    module's controller-manager started first)."""

    @pytest.fixture(scope="module")
    def kubelet(cluster: LocalCluster, cm: ComponentProcs) -> Iterator[StandInKubelet]:
        with Client(cluster.endpoints(), timeout=20) as c:
            namespace(c, ns)
            with StandInKubelet(c, {ns}, **kw) as k:
                yield k

    return kubelet
