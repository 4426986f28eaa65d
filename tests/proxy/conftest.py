"""One real master and one proxy node (network namespaces) per module.

The proxy runs as ``hakube proxy`` in the lab's node namespace, with its own identity
(``system:kube-proxy``), against a master on the host's loopback. Services here have no
selector and an explicit ClusterIP, and their Endpoints are written by the test -- as
``kube-dns``'s may be -- so no controller is needed and every change is the test's own.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakube.client import Client
from hakube.local.cluster import write_config
from hakube.testing import pki as testpki
from hakube.testing.cluster import LocalCluster
from hakube.testing.netns import ip, unavailable_reason
from hakube.testing.proxylab import ProxyLab
from hakube.testing.wait import wait_for
from tests.conftest import require


def require_nft() -> None:
    """Root, network namespaces and nft (scripts/install/nftables.sh), or skip (fail under CI)."""
    require(unavailable_reason())
    require(None if shutil.which("nft") else "nft is not installed (scripts/install/nftables.sh)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 1) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoints(), timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def proxy_config(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A client config with the proxy's own certificate (user ``proxy``)."""
    path = str(tmp_path_factory.mktemp("proxyconf") / "proxy.conf")
    return write_config(path, testpki.shared(), cluster.endpoints(), user="proxy")


@pytest.fixture(scope="module")
def lab(
    cluster: LocalCluster, proxy_config: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyLab]:
    require_nft()
    workdir = tmp_path_factory.mktemp("lab")
    with ProxyLab(str(workdir), pods=3) as lab:
        lab.start_proxy(cluster.endpoints(), env={"HAKUBE_CONFIG": proxy_config})
        try:
            wait_for(lambda: lab.full_syncs() >= 1, 60, "the proxy's first sync")
            yield lab
        finally:
            print(Path(workdir, "proxy.log").read_text()[-2000:] if lab.proxy else "")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace (root, nft), deleted afterwards."""
    require_nft()
    name = f"hkpx{secrets.token_hex(3)}"
    ip("netns", "add", name)
    try:
        yield name
    finally:
        ip("netns", "del", name, check=False)
