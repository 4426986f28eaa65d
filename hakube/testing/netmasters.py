"""Real ``hakube master`` processes on netns hosts, for scenarios that need real readiness.

Each host runs one master: the API on every address (so it answers on the VIP too), Raft on the
host's own address, and /readyz on the host's loopback, where keepalived's check asks. The
subprocesses import hakube from the same source tree as the caller, whatever is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import hakube
from hakube.local.cluster import cluster_pki
from hakube.testing import pki as testpki
from hakube.testing.netns import Host

API_PORT = 6443
RAFT_PORT = 7000
METRICS_PORT = 9100
READYZ_URL = f"http://127.0.0.1:{METRICS_PORT}/readyz"

_STATUS = """
import sys
from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.testing.pki import channel
with channel(sys.argv[1]) as ch:
    stub = api_pb2_grpc.ClusterServiceStub(ch)
    r = stub.Status(api_pb2.ClusterStatusRequest(), timeout=float(sys.argv[2]))
print(r.name, int(r.ready), r.leader)
"""


def env() -> dict[str, str]:
    """The caller's environment with this source tree first on PYTHONPATH."""
    root = str(Path(hakube.__file__).resolve().parents[1])
    extra = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{root}:{extra}" if extra else root)


TEST_VIP = "192.0.2.100"
"""The VIP the netns tests use; every master's certificate names it, so that clients which
reach the API through the VIP can verify whichever master holds it."""


def start_master(
    host: Host,
    peers: list[Host],
    extra: list[str] | None = None,
    cert_sans: tuple[str, ...] = (TEST_VIP,),
) -> subprocess.Popen[bytes]:
    """Start the master named after ``host``, with the other ``peers`` as Raft partners and
    ``extra`` flags (e.g. ``--force-new-cluster``). Its certificate (in the network's shared
    PKI directory, from the suite's test CA) names its address and ``cert_sans``."""
    workdir = host.network.workdir
    pki = cluster_pki(str(workdir / "pki"), {host.name: [host.ip, *cert_sans]}, testpki.shared())
    argv = [sys.executable, "-m", "hakube", "master", "--name", host.name]
    argv += ["--data-dir", str(workdir / f"data-{host.name}")]
    argv += ["--api-listen", f"0.0.0.0:{API_PORT}", "--raft-listen", f"{host.ip}:{RAFT_PORT}"]
    argv += ["--peers", ",".join(f"{p.name}={p.ip}:{RAFT_PORT}" for p in peers if p is not host)]
    argv += ["--metrics-listen", f"127.0.0.1:{METRICS_PORT}", "--pki-dir", pki.root]
    argv += ["--cert-sans", ",".join(cert_sans), *(extra or [])]
    return host.spawn(argv, log=workdir / f"master-{host.name}.log", env=env())


def master_pids(host: Host) -> list[int]:
    """Pids of the ``hakube master`` processes running on ``host``."""
    found = []
    for pid in host.pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"hakube" in argv and b"master" in argv:
            found.append(pid)
    return found


def is_ready(host: Host) -> bool:
    """The host's master answers /readyz with 200."""
    return host.fetch(READYZ_URL, timeout=1.0)[0] == 200


@dataclass(frozen=True)
class Status:
    name: str
    ready: bool
    leader: str


def status_via(client: Host, address: str, *, timeout: float = 2.0) -> Status | None:
    """ClusterService.Status from ``client`` to ``address`` (the VIP); None if unanswered."""
    argv = [sys.executable, "-c", _STATUS, f"{address}:{API_PORT}", str(timeout)]
    res = client.run(argv, timeout=timeout + 30, check=False, env=env())
    if res.returncode != 0:
        return None
    name, ready, *leader = res.stdout.split()
    return Status(name, ready == "1", leader[0] if leader else "")


def hakube_in(host: Host, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the ``hakube`` CLI inside ``host`` (e.g. ``members add`` from the client, through
    the VIP), with this source tree's hakube."""
    return host.run(
        [sys.executable, "-m", "hakube", *args], timeout=timeout, check=False, env=env()
    )
