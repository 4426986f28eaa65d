"""One multi-node cluster in network namespaces for the whole test session, shared by the test
modules whose assertions do not depend on a cluster of their own (tests/net/test_netnodes.py,
tests/net/test_service_proxy.py, tests/dns/test_dns_in_pods.py): building one -- masters, three
containerds with their images, three agents -- is most of what those modules cost.

Safe to share because each module keeps to its own objects (its namespace or its own names in
``default``), starts and stops its own proxies and DNS, and none removes, adds or reconfigures a
node; tests that do (tests/net/test_pod_network.py removes nodes, tests/net/test_vxlan.py runs
another route mode) keep clusters of their own. Registered for every directory by
tests/conftest.py; a module asks for it as ``netcluster = shared_netcluster_fixture()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hakube.testing.netnodes import NetCluster

SHARED_POD_CIDRS = ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
"""The nodes' ranges, given with ``--pod-cidr`` (n1, n2, n3)."""


@pytest.fixture(scope="session")
def shared_netcluster() -> Iterator[NetCluster]:
    """Three nodes n1..n3 with SHARED_POD_CIDRS, closed at the end of the session (also when a
    test failed)."""
    from tests.net.conftest import prerequisites  # here: tests/conftest.py imports this module

    prerequisites()
    with NetCluster(nodes=3, pod_cidrs=SHARED_POD_CIDRS) as c:
        yield c


def shared_netcluster_fixture() -> Callable[..., NetCluster]:
    """A module's ``netcluster`` fixture that is the session's shared cluster."""

    @pytest.fixture(scope="module")  # type: ignore[misc]
    def netcluster(shared_netcluster: NetCluster) -> NetCluster:
        return shared_netcluster

    return netcluster  # type: ignore[no-any-return]
