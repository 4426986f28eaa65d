"""One three-master cluster for all batch/per-node controller tests (starting one per module
would cost ~10 s each). Tests use distinct object names; each starts only the controllers it
checks, so objects left by earlier tests are not reconciled behind its back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.testing.cluster import LocalCluster


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 3) as c:
        yield c
