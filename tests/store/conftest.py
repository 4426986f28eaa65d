from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hakube.testing.raft import InProcessCluster


@pytest.fixture
def raft_cluster(tmp_path: object) -> Iterator[Callable[..., InProcessCluster]]:
    made: list[InProcessCluster] = []

    def make(n: int = 3, **settings: object) -> InProcessCluster:
        c = InProcessCluster(str(tmp_path), n, **settings)
        made.append(c)
        return c

    yield make
    for c in made:
        for name in list(c.nodes):
            c.stop(name)
