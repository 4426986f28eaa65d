"""hakube as a System for the store benchmark: three real master processes on loopback,
driven through the gRPC API with grpc.aio from the benchmark's own process.

A put is a Create of a ConfigMap whose name is derived from the key and whose binaryData holds
the value: the full API path (validation, uid, CAS, group commit, Raft) that every hakube write
takes. ``fsync=True`` starts the masters with ``--fsync`` (every member syncs its Raft journal
before any message leaves it, so an acknowledged write is on a majority's disks: etcd's default
durability); ``fsync=False`` is pysyncobj's plain mmap journal (compare with etcd
--unsafe-no-fsync).

Two systems:

- "hakube" (``HakubeSystem``): this checkout's masters, with the TLS they always run with now
  (mutual TLS on the API; on Raft too where the checkout has it); the client presents the
  cluster's admin certificate (``LocalCluster.credentials``).
- "hakube-plain" (``HakubePlainSystem``): the last release without TLS (commit ``PLAIN_REV``),
  to measure what TLS costs. Its masters run from a checkout of that commit (a temporary git
  worktree of this repository, or ``--plain-tree``) as processes with that tree on PYTHONPATH
  and that release's own flags, and the client talks plaintext gRPC to them. Nothing of the old
  tree is imported into the benchmark's process: the wire protocol is the same, so the same
  client code drives both.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc

import hakube
from bench.target import aio_channel
from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from hakube.local.cluster import MasterProc
from hakube.pki.layout import Pki
from hakube.pki.tls import Credentials
from hakube.testing.cluster import LocalCluster

_UNSAFE = re.compile(r"[^a-z0-9.-]+")

PLAIN_REV = "b089366"
"""The last commit whose API and Raft ran without TLS (the commit before TLS came in)."""

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The git checkout this benchmark runs from; the plain release is checked out of it."""


def _name(key: str) -> str:
    return _UNSAFE.sub("-", key.lower()).strip("-.")[:253] or "k"


class HakubeTarget:
    """One grpc.aio channel to one master: TLS with ``credentials``, or plaintext for None."""

    def __init__(
        self, endpoint: str, credentials: Credentials | None = None, *, name: str = "hakube"
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._stub: api_pb2_grpc.ObjectServiceStub | None = None

    async def setup(self) -> None:
        self._channel = aio_channel(self.endpoint, self.credentials)
        self._stub = api_pb2_grpc.ObjectServiceStub(self._channel)
        await self._channel.channel_ready()

    async def put(self, key: str, value: bytes) -> None:
        assert self._stub is not None
        obj = api_pb2.Object(
            config_map=core_pb2.ConfigMap(
                metadata={"name": _name(key), "namespace": "default"}, binary_data={"v": value}
            )
        )
        await self._stub.Create(
            api_pb2.CreateRequest(object=obj, request_id=str(uuid.uuid4())), timeout=30
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class HakubeCluster:
    def __init__(
        self, cluster: LocalCluster, *, credentials: Credentials | None, name: str = "hakube"
    ) -> None:
        self.local = cluster
        self.credentials = credentials
        self.name = name
        self._by_name = {m.name: m for m in cluster.masters}

    @property
    def members(self) -> Sequence[str]:
        return [m.name for m in self.local.masters]

    def target(self, member: str) -> HakubeTarget:
        return HakubeTarget(self._by_name[member].api, self.credentials, name=self.name)

    async def leader(self) -> str:
        return (await asyncio.to_thread(self.local.leader, 30.0)).name

    async def kill(self, member: str) -> None:
        await asyncio.to_thread(self.local.kill, self._by_name[member])

    async def restart(self, member: str) -> None:
        m = self._by_name[member]
        await asyncio.to_thread(self.local.start, m)
        await asyncio.to_thread(self.local.wait_ready, None, 60.0)

    async def wait_writable(self, timeout_s: float = 60.0) -> None:
        """Wait until a write through the leader succeeds: ready masters create the namespace
        the benchmark writes to just after, and a scenario's first writes must not race that."""
        deadline = time.monotonic() + timeout_s
        target = self.target(await self.leader())
        await target.setup()
        try:
            for i in itertools.count():
                try:
                    await target.put(f"/bench/ready/{i}", b"")
                    return
                except grpc.aio.AioRpcError as e:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{self.name}: no write succeeded within "
                            f"{timeout_s}s: {e.code().name} {e.details()}"
                        ) from e
                await asyncio.sleep(0.1)
        finally:
            await target.close()


class HakubeSystem:
    """This checkout's masters with their TLS; the client is the cluster's admin."""

    name = "hakube"
    version = hakube.__version__
    fsync_modes: Sequence[bool] = (True, False)
    cluster_class: type[HakubeCluster] = HakubeCluster

    def __init__(self, data_root: str | None = None) -> None:
        self.data_root = data_root

    @asynccontextmanager
    async def cluster(self, *, fsync: bool) -> AsyncIterator[HakubeCluster]:
        with tempfile.TemporaryDirectory(prefix="hakube-bench-", dir=self.data_root) as d:
            local = LocalCluster(d, 3, extra_args=["--fsync"] if fsync else ["--no-fsync"])
            try:
                await asyncio.to_thread(local.start_all, 60.0)
                cluster = self.cluster_class(local, credentials=local.credentials, name=self.name)
                await cluster.wait_writable()
                yield cluster
            finally:
                await asyncio.to_thread(local.__exit__, None, None, None)


class PlainLocalCluster(LocalCluster):
    """Masters of the release without TLS (``tree``), started and inspected in plaintext.

    Reuses the harness's process handling (kill, readiness on /readyz, leader from
    ClusterService.Status); the command line, the environment, the working directory and the
    channel differ.
    """

    def __init__(
        self, base_dir: str, tree: str, n: int = 3, *, extra_args: list[str] | None = None
    ) -> None:
        # PYTHONPATH replaced, not extended: the masters must not see this checkout's hakube.
        super().__init__(base_dir, n, extra_args=extra_args, env={"PYTHONPATH": tree})
        self.tree = tree

    def command(self, m: MasterProc) -> list[str]:
        """That release's ``hakube master`` flags (it has no --pki-dir)."""
        peers = ",".join(f"{o.name}={o.raft}" for o in self.masters if o is not m)
        return [
            sys.executable,
            "-m",
            "hakube",
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
            *m.extra_args,
        ]

    def start(self, m: MasterProc) -> None:
        """Spawned in the tree: ``python -m`` puts the working directory first on sys.path, and
        the benchmark's own (a checkout with TLS) must not shadow the release."""
        os.makedirs(self.base_dir, exist_ok=True)
        with open(m.log_path, "ab") as log:
            m.proc = subprocess.Popen(
                self.command(m),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.tree,
                start_new_session=True,
            )

    def prepare_pki(self) -> Pki:
        """No key material: the release has no TLS."""
        return self.pki

    @property
    def credentials(self) -> Credentials:
        raise RuntimeError("masters without TLS have no credentials")

    def channel(self, endpoint: str) -> grpc.Channel:
        return grpc.insecure_channel(endpoint)


def _git(repo: str, *args: str) -> str:
    out = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git -C {repo} {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


_VERSION = re.compile(r'^__version__ = "([^"]+)"', re.M)


class HakubePlainSystem:
    """The last hakube release without TLS, for the cost of TLS: same client, plaintext.

    The release's tree is ``tree`` if given (a checkout of ``PLAIN_REV``), else a git worktree
    of ``repo`` at ``rev`` added on first use in a temporary directory and removed by
    ``close()``.
    """

    name = "hakube-plain"
    fsync_modes: Sequence[bool] = (True, False)

    def __init__(
        self,
        *,
        data_root: str | None = None,
        tree: str | None = None,
        rev: str = PLAIN_REV,
        repo: str = REPO,
    ) -> None:
        self.data_root = data_root
        self.repo = repo
        self.rev = rev
        self.tree = os.path.abspath(tree) if tree else None
        self._worktree_parent: str | None = None
        self._checked = False
        if self.tree is not None:
            with open(os.path.join(self.tree, "hakube", "__init__.py")) as f:
                source = f.read()
            commit = _git(self.tree, "rev-parse", "--short", "HEAD")
        else:
            commit = _git(repo, "rev-parse", "--short", f"{rev}^{{commit}}")
            source = _git(repo, "show", f"{commit}:hakube/__init__.py")
        found = _VERSION.search(source)
        self.version = f"{found.group(1) if found else '?'} at {commit}, without TLS"

    def prepare(self) -> str:
        """The release's tree, checked out now if needed; checks its masters will import it."""
        if self._checked and self.tree is not None:
            return self.tree
        if self.tree is None:
            parent = tempfile.mkdtemp(prefix="hakube-plain-tree-")
            tree = os.path.join(parent, "tree")
            try:
                _git(self.repo, "worktree", "add", "--detach", tree, self.rev)
            except BaseException:
                shutil.rmtree(parent, ignore_errors=True)
                raise
            self._worktree_parent, self.tree = parent, tree
        probe = subprocess.run(
            [sys.executable, "-c", "import hakube; print(hakube.__file__)"],
            env=dict(os.environ, PYTHONPATH=self.tree),
            cwd=self.tree,
            capture_output=True,
            text=True,
        )
        where = probe.stdout.strip()
        if probe.returncode != 0 or not where.startswith(self.tree + os.sep):
            raise RuntimeError(
                f"with PYTHONPATH={self.tree}, hakube is imported from "
                f"{where or '(nowhere)'}: {probe.stderr.strip()[-500:]}"
            )
        self._checked = True
        return self.tree

    def close(self) -> None:
        """Remove the worktree this system added, if any; idempotent."""
        parent, self._worktree_parent = self._worktree_parent, None
        if parent is None:
            return
        tree, self.tree, self._checked = self.tree, None, False
        try:
            _git(self.repo, "worktree", "remove", "--force", str(tree))
        finally:
            shutil.rmtree(parent, ignore_errors=True)
            subprocess.run(["git", "-C", self.repo, "worktree", "prune"], capture_output=True)

    @asynccontextmanager
    async def cluster(self, *, fsync: bool) -> AsyncIterator[HakubeCluster]:
        tree = await asyncio.to_thread(self.prepare)
        with tempfile.TemporaryDirectory(prefix="hakube-plain-bench-", dir=self.data_root) as d:
            local = PlainLocalCluster(d, tree, 3, extra_args=["--fsync"] if fsync else [])
            try:
                await asyncio.to_thread(local.start_all, 60.0)
                cluster = HakubeCluster(local, credentials=None, name=self.name)
                await cluster.wait_writable()
                yield cluster
            finally:
                await asyncio.to_thread(local.__exit__, None, None, None)
