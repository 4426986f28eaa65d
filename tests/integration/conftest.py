from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster

__all__ = ["Api"]


@pytest.fixture
def cluster3(tmp_path: Any) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path / "c3"), 3) as c:
        yield c


@pytest.fixture
def api3(cluster3: LocalCluster) -> Iterator[Api]:
    a = Api(cluster3.endpoints())
    yield a
    a.close()
