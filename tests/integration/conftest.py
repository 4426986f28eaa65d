from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster

__all__ = ["Api"]


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    """The module's three masters (tests/conftest.py)."""
    return masters3


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[Api]:
    """A raw gRPC client of the module's masters."""
    a = Api(cluster.endpoints())
    yield a
    a.close()


@pytest.fixture
def cluster3(tmp_path: Any) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path / "c3"), 3) as c:
        yield c


@pytest.fixture
def api3(cluster3: LocalCluster) -> Iterator[Api]:
    a = Api(cluster3.endpoints())
    yield a
    a.close()
