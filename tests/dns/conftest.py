"""One real master, a controller-manager (ClusterIPs, Endpoints, StatefulSets) and a scheduler
as processes, a fake kubelet that runs the pods, and ``hakube dns`` processes on loopback:
``dns-a`` forwards to a real dnsmasq on loopback, ``dns-b`` has no upstream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from hakube.api.v1 import core_pb2
from hakube.client import Client
from hakube.local.dns import DnsAddress, LocalDns
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs, scheduler_procs
from hakube.testing.dnsmasq import Dnsmasq, DnsmasqUnavailable, free_udp_port
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.conftest import require

NODE = "dns-node"
UPSTREAM_HOSTS = [
    "192.0.2.7 outside.example",
    # dnsmasq would answer this one; cluster DNS must never ask it.
    "192.0.2.8 ghost.nowhere.svc.cluster.local",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 1) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoints(), timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def controllers(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    logs = str(tmp_path_factory.mktemp("components"))
    with (
        ComponentProcs("controller-manager", cluster.endpoints(), logs) as cm,
        scheduler_procs(cluster.endpoints(), logs) as sched,
    ):
        cm.start("cm", "--controllers", "clusterip,endpoints,statefulset")
        sched.start("sched")
        yield


@pytest.fixture(scope="module")
def kubelet(client: Client, controllers: None) -> Iterator[FakeKubelet]:
    with FakeKubelet(client) as k:
        k.add_node(NODE, cpu="64", memory="256Gi")
        yield k


@pytest.fixture(scope="module")
def upstream() -> Iterator[Dnsmasq]:
    d = Dnsmasq(UPSTREAM_HOSTS)
    try:
        d.start()
    except (DnsmasqUnavailable, OSError) as e:
        d.stop()
        require(f"dnsmasq cannot run: {e}")
    yield d
    d.stop()


@dataclass
class DnsInstances:
    local: LocalDns
    a: DnsAddress
    b: DnsAddress
    metrics_port: int = 0

    def start(self, name: str, *args: str) -> DnsAddress:
        addr = DnsAddress("127.0.0.1", free_udp_port())
        self.local.start(name, addr, *args)
        wait_for(lambda: answers(addr, "probe.cluster.local.", "SOA") is not None, 30, name)
        return addr

    def log(self, name: str) -> str:
        with open(self.local.log_path(name), errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def dns_procs(
    cluster: LocalCluster,
    kubelet: FakeKubelet,
    upstream: Dnsmasq,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DnsInstances]:
    local = LocalDns(
        str(tmp_path_factory.mktemp("dns")),
        cluster.endpoints(),
        pki=cluster.pki,
        extra_args=["--ttl", "1"],
    )
    inst = DnsInstances(local, DnsAddress("", 0), DnsAddress("", 0), free_udp_port())
    try:
        inst.a = inst.start(
            "dns-a",
            "--upstream",
            f"127.0.0.1:{upstream.port}",
            "--metrics-listen",
            f"127.0.0.1:{inst.metrics_port}",
        )
        inst.b = inst.start("dns-b", "--upstream", "none")
        yield inst
    finally:
        local.stop()


def query(
    addr: DnsAddress, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 3.0
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(q, addr.ip, port=addr.port, timeout=timeout)
    return dns.query.udp(q, addr.ip, port=addr.port, timeout=timeout)


def answers(addr: DnsAddress, name: str, rdtype: str = "A", **kw: bool) -> set[str] | None:
    """The rdata texts of the answer of type ``rdtype`` (an empty set for NXDOMAIN/NODATA), or
    None when the server does not answer (yet) or answers SERVFAIL (not synced yet)."""
    try:
        r = query(addr, name, rdtype, timeout=1.0, **kw)
    except (dns.exception.Timeout, OSError):
        return None
    if r.rcode() == 2:  # SERVFAIL
        return None
    code = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in r.answer if rrset.rdtype == code for rd in rrset}


@pytest.fixture
def ns(client: Client) -> str:
    """A fresh namespace (left behind: the module's cluster goes away with it)."""
    name = f"dns-{uuid.uuid4().hex[:6]}"
    client.namespaces.create(core_pb2.Namespace(metadata={"name": name}))
    return name
