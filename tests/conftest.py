"""Fixtures shared by every test area."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.testing.cluster import LocalCluster


@pytest.fixture(scope="module")
def masters3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three real masters for a whole test module, with the standard namespaces created."""
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 3) as c:
        yield c
