"""A cluster of real ``hakube master`` processes on 127.0.0.1.

Used by ``hakube up``, and (through ``hakube.testing.cluster``) by the integration tests and
the benchmarks. Each master is its own process (so kill -9 means what it says), with its own
data dir under ``base_dir``. Methods wait on conditions with deadlines; nothing sleeps for a
fixed time.

Clusters run with TLS as any other: ``base_dir/pki`` holds the CA (copied from ``ca``, or the
cluster's own when ``ca`` is that directory) and each master's certificate; ``admin_config``
is a client config for the cluster, and ``credentials`` the admin's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import grpc

from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.client import Client, HakubeError
from hakube.client.config import ClientConfig, tls_settings, write_client_config
from hakube.local import procs
from hakube.local.kubeconfig import write_kubeconfig
from hakube.pki import files
from hakube.pki.layout import Pki
from hakube.pki.tls import Credentials, channel_credentials


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound and released together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_pki(path: str, masters: dict[str, list[str]], ca: Pki) -> Pki:
    """A cluster's PKI directory at ``path``: the CA and user certificates of ``ca`` copied
    in (unless ``path`` has a CA already, e.g. is ``ca``), and each master's certificate
    issued for its hosts (kept if it exists)."""
    pki = Pki(path)
    files.ensure_private_dir(path)
    if not pki.has_ca():
        for name in ("ca.crt", "ca.key"):
            shutil.copy2(os.path.join(ca.root, name), os.path.join(path, name))
        os.makedirs(os.path.join(path, "users"), mode=0o700, exist_ok=True)
        for user in os.listdir(os.path.join(ca.root, "users")):
            shutil.copy2(os.path.join(ca.root, "users", user), os.path.join(path, "users", user))
    pki.init(masters)
    return pki


def write_config(path: str, pki: Pki, servers: list[str], user: str = "admin") -> str:
    """A client config naming ``servers`` and ``user``'s credentials in ``pki``."""
    write_client_config(path, ClientConfig(servers=servers, tls=tls_settings(pki.user_tls(user))))
    return path


@dataclass
class MasterProc:
    name: str
    api: str
    raft: str
    metrics: str
    k8s_api: str
    """The Kubernetes REST API's address (kubectl)."""
    data_dir: str
    log_path: str
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class LocalCluster:
    """Start, kill, restart and inspect N masters. Use as a context manager."""

    def __init__(
        self,
        base_dir: str,
        n: int = 3,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        ca: Pki,
    ) -> None:
        """``ca``: the PKI whose CA and user certificates the cluster uses (its own
        ``base_dir/pki`` for a cluster with its own CA)."""
        self.base_dir = base_dir
        self._ca = ca
        ports = free_ports(4 * n)
        self.masters: list[MasterProc] = []
        for i in range(n):
            name = f"m{i + 1}"
            self.masters.append(
                MasterProc(
                    name=name,
                    api=f"127.0.0.1:{ports[4 * i]}",
                    raft=f"127.0.0.1:{ports[4 * i + 1]}",
                    metrics=f"127.0.0.1:{ports[4 * i + 2]}",
                    k8s_api=f"127.0.0.1:{ports[4 * i + 3]}",
                    data_dir=os.path.join(base_dir, name),
                    log_path=os.path.join(base_dir, f"{name}.log"),
                    extra_args=list(extra_args or []),
                )
            )
        self.env = dict(os.environ, **(env or {}))
        self.pki = Pki(os.path.join(base_dir, "pki"))
        self.admin_config = os.path.join(base_dir, "admin.conf")
        self._credentials: Credentials | None = None

    def prepare_pki(self) -> Pki:
        """The cluster's PKI directory and admin config (idempotent; masters added later get
        their certificates here too)."""
        cluster_pki(self.pki.root, {m.name: ["127.0.0.1"] for m in self.masters}, self._ca)
        write_config(self.admin_config, self.pki, self.endpoints())
        return self.pki

    @property
    def credentials(self) -> Credentials:
        """The admin's credentials for this cluster."""
        if self._credentials is None:
            self._credentials = self.prepare_pki().user_tls("admin").load()
        return self._credentials

    def kubeconfig(
        self,
        path: str = "",
        *,
        master: MasterProc | None = None,
        credentials: Credentials | None = None,
    ) -> str:
        """A kubeconfig for ``kubectl`` naming one master's REST API (default: the first),
        with ``credentials`` (default: the admin's); written to ``path`` (default
        ``base_dir/kubeconfig``)."""
        m = master or self.masters[0]
        path = path or os.path.join(self.base_dir, "kubeconfig")
        return write_kubeconfig(path, m.k8s_api, credentials or self.credentials)

    def k8s_endpoints(self) -> list[str]:
        """The masters' Kubernetes REST API addresses."""
        return [m.k8s_api for m in self.masters]

    def client(self, **kwargs: Any) -> Client:
        """A Client of this cluster as its admin (close it, or use it as a context manager)."""
        return Client(self.endpoints(), credentials=self.credentials, **kwargs)

    def channel(self, endpoint: str) -> grpc.Channel:
        """A raw gRPC channel to one master, with the admin's credentials."""
        return grpc.secure_channel(endpoint, channel_credentials(self.credentials))

    # -- lifecycle ----------------------------------------------------------------------------

    def command(self, m: MasterProc) -> list[str]:
        peers = ",".join(f"{o.name}={o.raft}" for o in self.masters if o is not m)
        return procs.hakube_argv(
            "master",
            "--name",
            m.name,
            "--data-dir",
            m.data_dir,
            "--api-listen",
            m.api,
            "--raft-listen",
            m.raft,
            "--peers",
            peers,
            "--metrics-listen",
            m.metrics,
            "--k8s-api-listen",
            m.k8s_api,
            "--pki-dir",
            self.pki.root,
            *m.extra_args,
        )

    def start(self, m: MasterProc) -> None:
        os.makedirs(self.base_dir, exist_ok=True)
        self.prepare_pki()
        m.proc = procs.spawn(self.command(m), m.log_path, env=self.env)

    def start_all(self, wait: float = 30.0) -> LocalCluster:
        for m in self.masters:
            if not m.alive:
                self.start(m)
        self.wait_ready(timeout=wait)
        return self

    def kill(self, m: MasterProc) -> None:
        """SIGKILL one master (only the process we started) and reap it."""
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)

    def terminate(self, m: MasterProc, timeout: float = 10.0) -> None:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.terminate()
            try:
                m.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(m)

    def stop_all(self) -> None:
        for m in self.masters:
            self.terminate(m, timeout=5)

    def __enter__(self) -> LocalCluster:
        """All masters running and ready, and the standard namespaces created (the masters
        create them just after becoming ready; a test's first write must not beat them)."""
        self.start_all()
        deadline = time.monotonic() + 30
        while not self.bootstrapped():
            if time.monotonic() > deadline:
                raise TimeoutError("the standard namespaces were not created within 30s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.masters:
            self.kill(m)

    # -- inspection ---------------------------------------------------------------------------

    def endpoints(self) -> list[str]:
        return [m.api for m in self.masters]

    def bootstrapped(self) -> bool:
        """Whether the masters have created the standard namespaces yet."""
        from hakube.master import BOOTSTRAP_NAMESPACES

        try:
            with self.client(timeout=2) as c:
                return all(c.namespaces.get(ns).metadata.name == ns for ns in BOOTSTRAP_NAMESPACES)
        except HakubeError:
            return False

    def is_ready(self, m: MasterProc) -> bool:
        if not m.alive:
            return False
        try:
            with urllib.request.urlopen(f"http://{m.metrics}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, masters: list[MasterProc] | None = None, timeout: float = 30.0) -> None:
        """Wait until every given live master (default: all live ones) reports ready."""
        deadline = time.monotonic() + timeout
        while True:
            targets = [m for m in (masters or self.masters) if m.alive]
            if targets and all(self.is_ready(m) for m in targets):
                return
            for m in self.masters:
                if m.proc is not None and m.proc.poll() not in (None, -9) and m in targets:
                    raise RuntimeError(
                        f"master {m.name} exited with {m.proc.returncode}; see "
                        f"{m.log_path}:\n{self.tail(m)}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"masters not ready within {timeout}s: "
                    + ", ".join(m.name for m in targets if not self.is_ready(m))
                )
            time.sleep(0.05)

    def status(self, m: MasterProc, timeout: float = 2.0) -> api_pb2.ClusterStatusResponse:
        with self.channel(m.api) as ch:
            return api_pb2_grpc.ClusterServiceStub(ch).Status(
                api_pb2.ClusterStatusRequest(), timeout=timeout
            )

    def leader(self, timeout: float = 15.0) -> MasterProc:
        """The master that every live master agrees leads (waits for agreement)."""
        deadline = time.monotonic() + timeout
        while True:
            names = set()
            for m in self.masters:
                if m.alive:
                    try:
                        names.add(self.status(m).leader)
                    except grpc.RpcError:
                        names.add("")
            if len(names) == 1 and "" not in names:
                name = names.pop()
                for m in self.masters:
                    if m.name == name and m.alive:
                        return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"no agreed leader within {timeout}s (saw {names})")
            time.sleep(0.05)

    def tail(self, m: MasterProc, lines: int = 20) -> str:
        try:
            with open(m.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""
