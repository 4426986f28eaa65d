"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hakube.local.cluster import write_config
from hakube.testing import pki as testpki
from hakube.testing.cluster import LocalCluster
from tests.netshared import shared_netcluster  # noqa: F401  (a session fixture for every area)


@pytest.fixture(scope="session", autouse=True)
def test_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every cluster a test starts uses this process's test CA (hakube.testing.pki), so one
    client config with the admin's credentials -- $HAKUBE_CONFIG, inherited by the processes
    tests start -- reaches any of them; each test names the servers itself."""
    path = str(tmp_path_factory.mktemp("client") / "config")
    pki = testpki.shared()
    write_config(path, pki, [])
    old = os.environ.get("HAKUBE_CONFIG")
    os.environ["HAKUBE_CONFIG"] = path
    yield path
    if old is None:
        os.environ.pop("HAKUBE_CONFIG", None)
    else:
        os.environ["HAKUBE_CONFIG"] = old


@pytest.fixture(scope="module")
def masters3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three real masters for a whole test module, with the standard namespaces created."""
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 3) as c:
        yield c


def require(reason: str | None) -> None:
    """Skip for ``reason`` -- or fail, under CI=true, where a missing prerequisite is a broken
    install (scripts/test.sh), not a reason to report green. None: nothing is missing."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
