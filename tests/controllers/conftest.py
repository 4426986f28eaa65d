"""A real three-master cluster per module, and controller-manager and scheduler processes
against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs, scheduler_procs


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    return masters3


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoints(), timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def scheduler(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComponentProcs]:
    """A real scheduler for the module: it binds the pods that fake kubelets run."""
    with scheduler_procs(cluster.endpoints(), str(tmp_path_factory.mktemp("sched"))) as procs:
        procs.start("sched-a")
        yield procs


@pytest.fixture
def managers(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComponentProcs]:
    """Controller-manager processes; the test starts as many as it wants."""
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as procs:
        yield procs
