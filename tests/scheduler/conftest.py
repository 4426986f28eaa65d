"""A real three-master cluster per module, scheduler processes, simulated nodes."""
# ruff: noqa: F401, F811 - the cluster fixture is shared with the controller tests

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs, scheduler_procs
from hakube.testing.fakekubelet import FakeKubelet
from tests.controllers.conftest import cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoints(), timeout=20) as c:
        yield c
        clean(c)


def clean(c: Client) -> None:
    """Remove what a test left: nodes, their leases, pods (at once), non-system namespaces."""
    for n in c.nodes.list().items:
        c.delete(core_pb2.Node, n.metadata.name)
    for lease in c.leases.list(namespace="kube-node-lease").items:
        c.delete(core_pb2.Lease, lease.metadata.name, namespace="kube-node-lease")
    for p in c.pods.list(namespace="").items:
        try:
            c.delete(
                pod_pb2.Pod, p.metadata.name, namespace=p.metadata.namespace, grace_period_seconds=0
            )
        except errors.NotFound:
            pass


@pytest.fixture
def nodes(client: Client) -> Iterator[FakeKubelet]:
    with FakeKubelet(client, stop_delay=math.inf) as sim:
        yield sim


@pytest.fixture
def schedulers(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComponentProcs]:
    with scheduler_procs(cluster.endpoints(), str(tmp_path_factory.mktemp("sched"))) as procs:
        yield procs
