"""A real three-master cluster per module with a scheduler, a controller-manager and one
simulated node agent, and the real ``kubectl`` pointed at it through a kubeconfig."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakube.agent.agent import Agent
from hakube.pki import certs
from hakube.pki.tls import Credentials
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs, scheduler_procs
from tests.agent.conftest import running_sim_agent
from tests.conftest import require

IMAGE = "hakube.test/busybox:1"
"""An image the simulated runtime runs (it interprets ``sh -c`` with echo and sleep)."""


@dataclass
class Kubectl:
    """The real kubectl with one kubeconfig."""

    kubeconfig: str

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """stdout of a command that must succeed (its stderr in the failure message)."""
        r = self(*args, stdin=stdin)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}{r.stdout}"
        return r.stdout


def rest_tls_context(ca: bytes, pair: tuple[bytes, bytes] | None) -> ssl.SSLContext:
    """A client TLS context for the REST door: trusts ``ca``; presents the certificate and key
    of ``pair`` (PEM) if given, else no client certificate."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.check_hostname = False
    if pair is not None:
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "c"), os.path.join(d, "k")
            for path, data in ((cert, pair[0]), (key, pair[1])):
                with open(path, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert, key)
    return ctx


def user_credentials(cluster: LocalCluster, user: str) -> Credentials:
    """A certificate from the cluster CA for ``user``, who has no RBAC binding."""
    cert, key = cluster.pki.load_ca().issue_pair(certs.Identity(user, ()))
    return Credentials(cluster.credentials.ca, cert, key)


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    require(None if shutil.which("kubectl") else "kubectl is not installed")
    return masters3


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster) -> Kubectl:
    return Kubectl(cluster.kubeconfig())


@pytest.fixture(scope="module")
def components(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The scheduler and the workload controllers, as processes."""
    with (
        scheduler_procs(cluster.endpoints(), str(tmp_path_factory.mktemp("sched"))) as sched,
        ComponentProcs(
            "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
        ) as cm,
    ):
        sched.start("sched-a")
        cm.start("cm-a", "--controllers", "replicaset,deployment,garbagecollector")
        yield


@pytest.fixture(scope="module")
def node(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One node agent on the simulated runtime (real agent code, no containers)."""
    root: Path = tmp_path_factory.mktemp("node")
    with running_sim_agent(cluster.endpoints(), root) as agent:
        yield agent
