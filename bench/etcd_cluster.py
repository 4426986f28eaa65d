"""A throwaway three-member etcd cluster on 127.0.0.1, and an etcd client target for the driver.

etcd is the peer hakube's store must beat (docs/benchmarks.md), so the benchmark runs a real one
beside hakube on the same machine: Debian's ``etcd-server`` (etcd 3.4), members as child
processes of this one, data dirs in a temporary directory, ports picked free on loopback.

With ``tls=True`` ("etcd-tls") etcd runs as a secured production etcd does: https on client and
peer URLs, and both sides require a certificate from the cluster's CA (``--client-cert-auth``,
``--peer-client-cert-auth``). The CA is a throwaway one made with ``hakube.pki`` in the data
directory, each member has its own server+client certificate for 127.0.0.1/localhost, and the
benchmark's client presents a client certificate over the same grpc.aio channel type as hakube's.

Invariants:

- Only processes this module started are ever signalled, by pid, never by name.
- Leaving the ``EtcdSystem.cluster()`` context (normally, by error or by cancellation) kills every
  member still running and deletes the data directory.
- Nothing sleeps for a fixed time: waits poll a condition until a deadline, then raise with the
  member's log tail so a failed start explains itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from bench.etcdpb import rpc_pb2, rpc_pb2_grpc
from bench.target import aio_channel
from hakube.local.cluster import free_ports
from hakube.pki import certs, files
from hakube.pki.tls import Credentials

ETCD = "etcd"
"""Binary name; Debian's etcd-server package installs /usr/bin/etcd."""


PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
"""Prefix that makes the kernel SIGKILL a member when the thread that started it dies, so a
benchmark killed with -9 leaves no etcd behind. setpriv (util-linux) execs etcd: same pid."""


def etcd_version(binary: str = ETCD) -> str:
    """The server version, e.g. "3.4.23"; raises FileNotFoundError when etcd is not installed."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    first = out.stdout.splitlines()[0]  # "etcd Version: 3.4.23"
    return first.split(":", 1)[1].strip()


def supports_unsafe_no_fsync(binary: str = ETCD) -> bool:
    """Whether this etcd accepts --unsafe-no-fsync (added late in 3.4; unknown flags exit 2)."""
    probe = subprocess.run([binary, "--unsafe-no-fsync", "--version"], capture_output=True)
    return probe.returncode == 0


@dataclass(frozen=True)
class EtcdTls:
    """Files of a TLS etcd cluster: one CA, a certificate per member, one client's credentials."""

    ca_file: str
    member_files: dict[str, tuple[str, str]]
    """member name -> (certificate file, key file), used for both client and peer traffic."""
    client: Credentials
    """What the benchmark's client presents (and the CA it verifies members against)."""

    @classmethod
    def create(cls, directory: str, members: Sequence[str]) -> EtcdTls:
        """A new throwaway CA in ``directory`` and certificates issued by it."""
        files.ensure_private_dir(directory)
        ca_pem, ca_key = certs.create_ca("hakube-bench-etcd-ca")
        ca = certs.CA.load(ca_pem, ca_key)
        ca_file = os.path.join(directory, "ca.crt")
        files.write_atomic(ca_file, ca_pem)
        member_files = {}
        for name in members:
            cert, key = ca.issue_pair(
                certs.Identity(f"etcd-{name}"),
                server=True,
                client=True,
                hosts=("127.0.0.1", "localhost"),
            )
            paths = (os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key"))
            files.write_atomic(paths[1], key)
            files.write_atomic(paths[0], cert)
            member_files[name] = paths
        cert, key = ca.issue_pair(certs.Identity("bench-client"), client=True)
        return cls(ca_file, member_files, Credentials(ca=ca_pem, cert=cert, key=key))

    def flags(self, member: str) -> list[str]:
        """etcd's flags for mutual TLS on the client and the peer URLs."""
        cert, key = self.member_files[member]
        return [
            "--cert-file",
            cert,
            "--key-file",
            key,
            "--client-cert-auth",
            "--trusted-ca-file",
            self.ca_file,
            "--peer-cert-file",
            cert,
            "--peer-key-file",
            key,
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            self.ca_file,
        ]


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    data_dir: str
    log_path: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def endpoint(self) -> str:
        """host:port for gRPC."""
        return self.client_url.split("://", 1)[-1]

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


class EtcdTarget:
    """Puts through etcd's KV service on one member, over one grpc.aio channel.

    One channel multiplexes all concurrent requests, as a real client would; requests are not
    spread over members, so a put to a follower pays etcd's forwarding to the leader.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        rpc_timeout_s: float = 10.0,
        credentials: Credentials | None = None,
        name: str = "etcd",
    ) -> None:
        """``credentials``: TLS with this client certificate; None for plaintext."""
        self.name = name
        self.endpoint = endpoint
        self.rpc_timeout_s = rpc_timeout_s
        self.credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._kv: rpc_pb2_grpc.KVStub | None = None

    async def setup(self) -> None:
        self._channel = aio_channel(self.endpoint, self.credentials)
        try:
            await asyncio.wait_for(self._channel.channel_ready(), self.rpc_timeout_s)
        except BaseException:
            await self.close()
            raise
        self._kv = rpc_pb2_grpc.KVStub(self._channel)

    async def put(self, key: str, value: bytes) -> None:
        if self._kv is None:
            raise RuntimeError("EtcdTarget.put before setup()")
        request = rpc_pb2.PutRequest(key=key.encode(), value=value)
        await self._kv.Put(request, timeout=self.rpc_timeout_s)

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._kv = self._channel, None, None
            await channel.close()


class EtcdCluster:
    """Three (or n) etcd members on loopback; implements ``bench.target.Cluster``.

    ``tls``: run with mutual TLS on client and peer URLs (https); False for plain http.
    """

    def __init__(
        self,
        base_dir: str,
        *,
        n: int = 3,
        fsync: bool = True,
        binary: str = ETCD,
        tls: bool = False,
        name: str = "etcd",
    ) -> None:
        self.base_dir = base_dir
        self.fsync = fsync
        self.binary = binary
        self.name = name
        ports = free_ports(2 * n)
        scheme = "https" if tls else "http"
        names = [f"e{i + 1}" for i in range(n)]
        self.tls = EtcdTls.create(os.path.join(base_dir, "pki"), names) if tls else None
        self._members = {
            f"e{i + 1}": EtcdMember(
                name=f"e{i + 1}",
                client_url=f"{scheme}://127.0.0.1:{ports[2 * i]}",
                peer_url=f"{scheme}://127.0.0.1:{ports[2 * i + 1]}",
                data_dir=os.path.join(base_dir, f"e{i + 1}.etcd"),
                log_path=os.path.join(base_dir, f"e{i + 1}.log"),
            )
            for i in range(n)
        }
        self._token = f"hakube-bench-{os.getpid()}-{ports[0]}"
        self._names_by_id: dict[int, str] = {}

    # -- bench.target.Cluster ---------------------------------------------------------------

    @property
    def members(self) -> Sequence[str]:
        return list(self._members)

    @property
    def client_credentials(self) -> Credentials | None:
        return self.tls.client if self.tls is not None else None

    def target(self, member: str) -> EtcdTarget:
        return EtcdTarget(
            self._members[member].endpoint, credentials=self.client_credentials, name=self.name
        )

    async def leader(self, timeout_s: float = 30.0) -> str:
        """Wait until every live member answers and names the same live leader; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            leader = await self._agreed_leader()
            if leader is not None:
                return leader
            self._check_exits()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"etcd members agreed on no live leader within {timeout_s}s; "
                    f"logs in {self.base_dir}"
                )
            await asyncio.sleep(0.05)

    async def kill(self, member: str) -> None:
        m = self._members[member]
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(m.proc.wait, 10)

    async def restart(self, member: str) -> None:
        self._spawn(self._members[member])
        await self.leader()

    # -- life cycle ---------------------------------------------------------------------------

    def command(self, m: EtcdMember) -> list[str]:
        """The etcd command line; flags of an existing data dir's cluster are ignored by etcd."""
        cluster = ",".join(f"{o.name}={o.peer_url}" for o in self._members.values())
        cmd = [
            *PDEATHSIG,
            self.binary,
            "--name",
            m.name,
            "--data-dir",
            m.data_dir,
            "--listen-client-urls",
            m.client_url,
            "--advertise-client-urls",
            m.client_url,
            "--listen-peer-urls",
            m.peer_url,
            "--initial-advertise-peer-urls",
            m.peer_url,
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            self._token,
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        if self.tls is not None:
            cmd += self.tls.flags(m.name)
        if not self.fsync:
            cmd.append("--unsafe-no-fsync")
        return cmd

    def _spawn(self, m: EtcdMember) -> None:
        if m.alive:
            raise RuntimeError(f"etcd member {m.name} is already running")
        # ETCD_* variables would silently override flags; start from a clean slate.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with open(m.log_path, "ab") as log:
            # Own session: a Ctrl-C at the terminal reaches us, and we stop the members ourselves.
            m.proc = subprocess.Popen(
                self.command(m),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    async def start(self) -> None:
        os.makedirs(self.base_dir, exist_ok=True)
        for m in self._members.values():
            self._spawn(m)
        await self.leader()

    async def stop(self) -> None:
        """Kill every member still running; safe to call more than once."""
        for name in self._members:
            await self.kill(name)

    # -- inspection ---------------------------------------------------------------------------

    async def status(self, member: str, timeout_s: float = 1.0) -> rpc_pb2.StatusResponse:
        """One member's Status, on a fresh channel so a restarted member is seen at once."""
        endpoint = self._members[member].endpoint
        async with aio_channel(endpoint, self.client_credentials) as channel:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            response: rpc_pb2.StatusResponse = await stub.Status(
                rpc_pb2.StatusRequest(), timeout=timeout_s, wait_for_ready=True
            )
            return response

    async def _agreed_leader(self) -> str | None:
        live = [m.name for m in self._members.values() if m.alive]
        answers = await asyncio.gather(*(self.status(n) for n in live), return_exceptions=True)
        leaders = set()
        for name, answer in zip(live, answers, strict=True):
            if isinstance(answer, BaseException):
                return None
            self._names_by_id[answer.header.member_id] = name
            leaders.add(answer.leader)
        if len(leaders) != 1:
            return None
        leader = self._names_by_id.get(leaders.pop())
        return leader if leader is not None and self._members[leader].alive else None

    def _check_exits(self) -> None:
        for m in self._members.values():
            if m.proc is not None and m.proc.poll() not in (None, -signal.SIGKILL):
                raise RuntimeError(
                    f"etcd member {m.name} exited with {m.proc.returncode}; "
                    f"{m.log_path}:\n{m.log_tail()}"
                )


class EtcdSystem:
    """etcd as a ``bench.target.System``: Debian's etcd 3.4, members on loopback; named
    "etcd-tls" with mutual TLS on client and peer traffic, "etcd" without."""

    def __init__(
        self, *, binary: str = ETCD, data_root: str | None = None, tls: bool = False
    ) -> None:
        self.name = "etcd-tls" if tls else "etcd"
        self.tls = tls
        self.binary = binary
        self.data_root = data_root
        self.version = etcd_version(binary)
        self.fsync_modes: Sequence[bool] = (
            (True, False) if supports_unsafe_no_fsync(binary) else (True,)
        )

    @asynccontextmanager
    async def cluster(self, *, fsync: bool) -> AsyncIterator[EtcdCluster]:
        if not fsync and False not in self.fsync_modes:
            raise ValueError(f"etcd {self.version} has no --unsafe-no-fsync")
        base = tempfile.mkdtemp(prefix="hakube-etcdbench-", dir=self.data_root)
        try:
            cluster = EtcdCluster(
                base, fsync=fsync, binary=self.binary, tls=self.tls, name=self.name
            )
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        try:
            await cluster.start()
            yield cluster
        finally:
            await cluster.stop()
            shutil.rmtree(base, ignore_errors=True)
