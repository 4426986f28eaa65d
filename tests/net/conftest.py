"""Fixtures for networking tests: a real multi-node cluster in network namespaces
(hakube.testing.netnodes), shared by the tests of one module.

Other test directories use it too: ``from tests.net.conftest import netcluster_fixture`` and
``netcluster = netcluster_fixture(nodes=3)`` in their own conftest or module; tests/net/pods.py
has pod helpers (a web server naming its pod, waiting for a pod's address). Modules that need no
cluster of their own share one for the whole session instead (tests/netshared.py,
``shared_netcluster_fixture()``): a cluster costs far more than most tests. Under CI=true a
missing prerequisite fails the tests; elsewhere it skips them (tests/conftest.py ``require``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hakube.api.podsecurity import LABEL_ENFORCE, PRIVILEGED
from hakube.api.v1 import core_pb2
from hakube.testing import netnodes
from hakube.testing.netns import unavailable_reason
from tests.conftest import require


def prerequisites() -> None:
    """Skip (or fail under CI) when this machine cannot build a NetCluster."""
    require(unavailable_reason())
    missing = netnodes.missing_prerequisites()
    require("missing: " + "; ".join(missing) if missing else None)


def netcluster_fixture(
    scope: str = "module", **kwargs: Any
) -> Callable[..., Iterator[netnodes.NetCluster]]:
    """A pytest fixture giving a started NetCluster (``kwargs`` as for NetCluster), closed at
    the end of ``scope`` -- also when a test failed."""

    @pytest.fixture(scope=scope)  # type: ignore[misc]
    def netcluster() -> Iterator[netnodes.NetCluster]:
        prerequisites()
        with netnodes.NetCluster(**kwargs) as c:
            yield c

    return netcluster  # type: ignore[no-any-return]


def privileged_namespace(client: Any, name: str) -> None:
    """Create namespace ``name`` labelled Pod Security privileged (hostPort, hostNetwork)."""
    ns = core_pb2.Namespace()
    ns.metadata.name = name
    ns.metadata.labels[LABEL_ENFORCE] = PRIVILEGED
    client.namespaces.create(ns)
