"""Helpers for the workload controller tests (ReplicaSet, Deployment, GC, pod GC)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hakube.api.owners import controller_ref
from hakube.api.v1 import core_pb2, pod_pb2, workloads_pb2
from hakube.client import Client, errors
from hakube.client.events import EventRecorder
from hakube.controllers.base import Context, Controller, SharedInformers
from hakube.controllers.podutil import is_active, is_ready
from hakube.controllers.settings import ControllerSettings
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

CONTROLLERS = "replicaset,garbagecollector,deployment"
FLAGS: list[str] = []


@pytest.fixture(scope="module")
def cm(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComponentProcs]:
    """One controller-manager for the whole module (tests use their own namespaces)."""
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as procs:
        procs.start("cm-a", "--controllers", CONTROLLERS, *FLAGS)
        yield procs


@contextmanager
def in_process(
    client: Client, kind: type[Controller], settings: ControllerSettings | None = None
) -> Iterator[Controller]:
    """One controller of ``kind`` in this process, set up on shared informers that have synced
    and ended with the block; the test calls ``sync`` itself or ``run()`` for the workers."""
    ctx = Context(
        client=client,
        informers=SharedInformers(client),
        leading=threading.Event(),
        events=EventRecorder(client, "controller-manager-test", host="test"),
        settings=settings or ControllerSettings(),
    )
    controller = kind(ctx)
    controller.setup()
    ctx.informers.start()
    try:
        assert ctx.informers.wait_synced(20), "informers did not sync"
        yield controller
    finally:
        ctx.leading.set()
        controller.stop()
        ctx.informers.stop()
        ctx.events.close()


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


def fake_kubelet(ns: str, **kw: Any) -> Any:
    """A module fixture: namespace ``ns`` with a fake kubelet running its pods on one node,
    a real scheduler binding them there, and the module's controller-manager started first."""

    @pytest.fixture(scope="module")
    def kubelet(
        cluster: LocalCluster, cm: ComponentProcs, scheduler: ComponentProcs
    ) -> Iterator[FakeKubelet]:
        with Client(cluster.endpoints(), timeout=20) as c:
            namespace(c, ns)
            with FakeKubelet(c, namespaces={ns}, **kw) as k:
                k.add_node(f"{ns}-node", cpu="64", memory="256Gi", pods=1000)
                yield k

    return kubelet


class PodBounds:
    """Checks, after every pod event in ``ns`` for pods labelled ``app``, that at most
    ``max_pods`` are active and at least ``min_available`` of those are ready."""

    def __init__(
        self, client: Client, ns: str, app: str, *, max_pods: int, min_available: int
    ) -> None:
        self.ns, self.app = ns, app
        self.max_pods, self.min_available = max_pods, min_available
        self.violations: list[str] = []
        self.most = 0
        self.fewest_ready = 1 << 30
        self.events = 0
        self.created: dict[str, str] = {}
        """Every pod seen, by name: its first container's image."""
        self.informer = client.informer(pod_pb2.Pod, namespace=ns, label_selector=f"app={app}")
        self.informer.add_handlers(
            on_add=self._check, on_update=lambda old, new: self._check(new), on_delete=self._check
        )

    def _check(self, _: Any) -> None:
        if not self.informer.has_synced:
            return
        pods = self.informer.list()
        for p in pods:
            self.created.setdefault(p.metadata.name, p.spec.containers[0].image)
        active = [p for p in pods if is_active(p)]
        ready = sum(1 for p in active if is_ready(p))
        self.events += 1
        self.most = max(self.most, len(active))
        self.fewest_ready = min(self.fewest_ready, ready)
        if len(active) > self.max_pods:
            self.violations.append(f"{len(active)} active pods > {self.max_pods}")
        if ready < self.min_available:
            self.violations.append(f"{ready} ready pods < {self.min_available}")

    def __enter__(self) -> PodBounds:
        self.informer.start()
        self.informer.wait_for_sync(20)
        return self

    def __exit__(self, *exc: object) -> None:
        self.informer.stop()


def rolled_out(client: Client, ns: str, name: str) -> bool:
    d = client.deployments.get(name, namespace=ns)
    s, n = d.status, d.spec.replicas
    progressing = next((c for c in s.conditions if c.type == "Progressing"), None)
    return (
        s.observed_generation >= d.metadata.generation
        and s.updated_replicas == n
        and s.replicas == n
        and s.available_replicas == n
        and progressing is not None
        and progressing.reason == "NewReplicaSetAvailable"
    )


def wait_rolled_out(client: Client, ns: str, name: str, timeout: float = 40) -> None:
    wait_for(
        lambda: rolled_out(client, ns, name),
        timeout,
        f"deployment {name} to finish rolling out",
        interval=0.1,
    )


def images(client: Client, ns: str, app: str) -> list[str]:
    return sorted(
        p.spec.containers[0].image
        for p in pods(client, ns)
        if p.metadata.labels.get("app") == app and is_active(p)
    )


def set_image(client: Client, ns: str, name: str, image: str) -> int:
    """Read-modify-write as a user would, retrying when the controller wrote in between;
    returns the new generation."""
    for _ in range(10):
        d = client.deployments.get(name, namespace=ns)
        d.spec.template.spec.containers[0].image = image
        try:
            return client.deployments.update(d).metadata.generation
        except errors.Conflict:
            continue
    raise AssertionError(f"could not update deployment {name}")
