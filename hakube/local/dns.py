"""``hakube dns`` instances as local processes, and the kube-dns Service that names them.

Each instance is its own process (kind ``dns`` of a ``Supervisor``), logging to
``<name>.log`` in the data dir, running as ``system:hakube-dns`` (its certificate from the
cluster's PKI, in ``<name>.conf``): that identity may only list and watch Services and
Endpoints.

**Who keeps the kube-dns Endpoints.** The deployer that starts the instances (``hakube up``,
the test harness, an operator's playbook) writes ``kube-system/kube-dns``: a Service without a
selector on the well-known ClusterIP (10.96.0.10), ports 53/UDP ``dns`` and 53/TCP ``dns-tcp``,
and its Endpoints listing where each instance listens. Instances do not register themselves:
that would give the DNS identity write access to Endpoints, and an instance killed with
SIGKILL could not take its address out anyway; the supervisor restarts a dead instance on the
same address instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import Client, errors
from hakube.client.config import ENV_CONFIG, ClientConfig, tls_settings, write_client_config
from hakube.local import procs
from hakube.local.supervisor import Child, RestartPolicy, Supervisor
from hakube.pki.layout import Pki

KIND = "dns"
NAMESPACE = "kube-system"
SERVICE = "kube-dns"
CLUSTER_DNS_IP = "10.96.0.10"
"""The kube-dns ClusterIP pods' resolv.conf names (the agent's ``--cluster-dns`` default)."""


@dataclass(frozen=True)
class DnsAddress:
    ip: str
    port: int


def kube_dns_objects(
    addresses: list[DnsAddress], cluster_ip: str = CLUSTER_DNS_IP
) -> tuple[core_pb2.Service, core_pb2.Endpoints]:
    """The kube-dns Service and its Endpoints for instances at ``addresses`` (one port for
    every instance: Endpoints give one port list per subset, so the first address's port is
    used by a subset of each distinct port)."""
    meta = meta_pb2.ObjectMeta(name=SERVICE, namespace=NAMESPACE, labels={"k8s-app": "kube-dns"})
    svc = core_pb2.Service(metadata=meta)
    svc.spec.cluster_ip = cluster_ip
    svc.spec.cluster_ips.append(cluster_ip)
    for name, proto in (("dns", "UDP"), ("dns-tcp", "TCP")):
        p = svc.spec.ports.add(name=name, protocol=proto, port=53)
        p.target_port.number_value = 53
    eps = core_pb2.Endpoints(metadata=meta)
    for port in sorted({a.port for a in addresses}):
        subset = eps.subsets.add()
        for a in addresses:
            if a.port == port:
                subset.addresses.add(ip=a.ip)
        subset.ports.add(name="dns", protocol="UDP", port=port)
        subset.ports.add(name="dns-tcp", protocol="TCP", port=port)
    return svc, eps


def ensure_kube_dns(
    client: Client, addresses: list[DnsAddress], cluster_ip: str = CLUSTER_DNS_IP
) -> None:
    """Create or update kube-system/kube-dns and its Endpoints to name ``addresses``."""
    svc, eps = kube_dns_objects(addresses, cluster_ip)
    try:
        have = client.services.get(SERVICE, namespace=NAMESPACE)
    except errors.NotFound:
        client.services.create(svc)
    else:
        if have.spec.cluster_ip != cluster_ip:
            raise errors.HakubeError(
                f"service {NAMESPACE}/{SERVICE} has clusterIP {have.spec.cluster_ip}, not "
                f"{cluster_ip}; delete it to let it be recreated"
            )
    try:
        current = client.endpoints.get(SERVICE, namespace=NAMESPACE)
    except errors.NotFound:
        client.endpoints.create(eps)
        return
    if list(current.subsets) != list(eps.subsets):
        del current.subsets[:]
        current.subsets.extend(eps.subsets)
        client.endpoints.update(current)


class LocalDns:
    """``hakube dns`` processes of one cluster; ``start`` one per address."""

    def __init__(
        self,
        data_dir: str,
        endpoints: list[str],
        *,
        pki: Pki,
        supervisor: Supervisor | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.endpoints = endpoints
        self.pki = pki
        self.supervisor = supervisor or Supervisor(RestartPolicy(restart=False))
        self.extra_args = list(extra_args or [])
        self.addresses: dict[str, DnsAddress] = {}

    @property
    def instances(self) -> list[Child]:
        return self.supervisor.of_kind(KIND)

    def log_path(self, name: str) -> str:
        return os.path.join(self.data_dir, f"{name}.log")

    def start(
        self,
        name: str,
        listen: DnsAddress,
        *args: str,
        identity: str = "",
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Child:
        """Start instance ``name`` answering on ``listen``; ``identity`` (default ``name``)
        marks its command line as this cluster's. ``prefix``: a command to run it under (e.g.
        ``nsenter --net=...``, to place it in a node's network namespace); ``env``: the
        environment (default this process's)."""
        conf = os.path.join(self.data_dir, f"{name}.conf")
        write_client_config(
            conf,
            ClientConfig(servers=list(self.endpoints), tls=tls_settings(self.pki.user_tls(KIND))),
        )
        argv = [*prefix] + procs.hakube_argv(
            "dns",
            "--servers",
            ",".join(self.endpoints),
            "--listen",
            f"{listen.ip}:{listen.port}",
            "--identity",
            identity or name,
            *self.extra_args,
            *args,
        )
        self.addresses[name] = listen
        return self.supervisor.spawn(
            name,
            KIND,
            argv,
            self.log_path(name),
            env=dict(env if env is not None else os.environ, **{ENV_CONFIG: conf}),
            pid_file=os.path.join(self.data_dir, f"{name}.pid"),
        )

    def stop(self, timeout: float = 10.0) -> None:
        self.supervisor.stop([KIND], timeout)

    def report(self) -> list[str]:
        out = []
        for c in self.instances:
            a = self.addresses.get(c.name)
            where = f"  udp+tcp {a.ip}:{a.port}" if a else ""
            out.append(f"  {c.name}  cluster DNS{where}  pid {c.pid}  log {c.log_path}")
        return out


def listen_address(data_dir: str, runtime: str) -> DnsAddress:
    """Where ``hakube up``'s DNS answers, chosen on the first start and kept in
    ``<data_dir>/dns-listen`` (so resolvers and the kube-dns Endpoints stay right across
    restarts). The simulated runtime: a free port on 127.0.0.1 (no pod needs it; ``dig`` on
    the host does). Containerd: the host's own address (the one its default route uses), port
    53: pods reach it through the kube-dns ClusterIP, which the proxy DNATs to it; a
    loopback address cannot be the target of a DNAT from a pod."""
    path = os.path.join(data_dir, "dns-listen")
    try:
        with open(path) as f:
            ip, _, port = f.read().strip().rpartition(":")
            return DnsAddress(ip, int(port))
    except (OSError, ValueError):
        pass
    if runtime == "containerd":
        addr = DnsAddress(host_address(), 53)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            addr = DnsAddress("127.0.0.1", s.getsockname()[1])
    with open(path, "w") as f:
        f.write(f"{addr.ip}:{addr.port}\n")
    return addr


def host_address() -> str:
    """The source address of this host's default route (a UDP connect sends nothing), or
    127.0.0.1 without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route lookup happens
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"
