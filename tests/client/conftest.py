"""Fixtures for the client tests: real master processes on loopback (hakube.testing).

``cluster`` is shared by a whole module (starting three masters costs ~2 s); tests that kill
masters use ``healed`` so that the next test finds all three running again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.client import Client
from hakube.testing.cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # A short watch history so that tests can outrun it and see a relist.
    with LocalCluster(
        str(tmp_path_factory.mktemp("masters")), 3, extra_args=["--history-size", "200"]
    ) as c:
        yield c


@pytest.fixture
def healed(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The shared cluster; restarts whatever a test killed and waits until all are ready."""
    yield cluster
    for m in cluster.masters:
        if not m.alive:
            cluster.start(m)
    cluster.wait_ready(timeout=30)
    cluster.leader(timeout=15)


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoints(), timeout=20) as c:
        yield c
