"""hakube as a System for the store benchmark: three real master processes on loopback,
driven through the gRPC API with grpc.aio from the benchmark's own process.

A put is a Create of a ConfigMap whose name is derived from the key and whose binaryData holds
the value: the full API path (validation, uid, CAS, group commit, Raft) that every hakube write
takes. ``fsync=True`` starts the masters with ``--fsync`` (every member syncs its Raft journal
before any message leaves it, so an acknowledged write is on a majority's disks: etcd's default
durability); ``fsync=False`` is pysyncobj's plain mmap journal (compare with etcd
--unsafe-no-fsync).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc

import hakube
from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from hakube.testing.cluster import LocalCluster

_UNSAFE = re.compile(r"[^a-z0-9.-]+")


def _name(key: str) -> str:
    return _UNSAFE.sub("-", key.lower()).strip("-.")[:253] or "k"


class HakubeTarget:
    """One grpc.aio channel to one master."""

    name = "hakube"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._channel: grpc.aio.Channel | None = None
        self._stub: api_pb2_grpc.ObjectServiceStub | None = None

    async def setup(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.endpoint)
        self._stub = api_pb2_grpc.ObjectServiceStub(self._channel)
        await self._channel.channel_ready()

    async def put(self, key: str, value: bytes) -> None:
        assert self._stub is not None
        obj = api_pb2.Object(config_map=core_pb2.ConfigMap(
            metadata={"name": _name(key), "namespace": "default"}, binary_data={"v": value}))
        await self._stub.Create(api_pb2.CreateRequest(object=obj, request_id=str(uuid.uuid4())),
                                timeout=30)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class HakubeCluster:
    def __init__(self, cluster: LocalCluster) -> None:
        self.local = cluster
        self._by_name = {m.name: m for m in cluster.masters}

    @property
    def members(self) -> Sequence[str]:
        return [m.name for m in self.local.masters]

    def target(self, member: str) -> HakubeTarget:
        return HakubeTarget(self._by_name[member].api)

    async def leader(self) -> str:
        return (await asyncio.to_thread(self.local.leader, 30.0)).name

    async def kill(self, member: str) -> None:
        await asyncio.to_thread(self.local.kill, self._by_name[member])

    async def restart(self, member: str) -> None:
        m = self._by_name[member]
        await asyncio.to_thread(self.local.start, m)
        await asyncio.to_thread(self.local.wait_ready, None, 60.0)


class HakubeSystem:
    name = "hakube"
    version = hakube.__version__
    fsync_modes: Sequence[bool] = (True, False)

    def __init__(self, data_root: str | None = None) -> None:
        self.data_root = data_root

    @asynccontextmanager
    async def cluster(self, *, fsync: bool) -> AsyncIterator[HakubeCluster]:
        with tempfile.TemporaryDirectory(prefix="hakube-bench-", dir=self.data_root) as d:
            local = LocalCluster(d, 3, extra_args=["--fsync"] if fsync else [])
            await asyncio.to_thread(local.start_all, 60.0)
            try:
                yield HakubeCluster(local)
            finally:
                await asyncio.to_thread(local.__exit__, None, None, None)
