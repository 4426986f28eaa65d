"""hakube through its Python client's many-writes path (hakube.client.batch.BatchWriter): the
benchmark's puts from all its coroutines are queued on one BatchWriter, which coalesces those in
flight into ObjectService.Batch calls. Reported as "hakube-batch" beside the unary "hakube"."""

from __future__ import annotations

import asyncio

from bench.hakube_system import HakubeCluster, HakubeSystem, _name
from hakube.api.v1 import core_pb2
from hakube.client import Client
from hakube.client.batch import BatchWriter
from hakube.pki.tls import Credentials


class HakubeBatchTarget:
    def __init__(self, endpoint: str, credentials: Credentials | None, *, name: str) -> None:
        self.name = name
        self.endpoint = endpoint
        self.credentials = credentials
        self._client: Client | None = None
        self._writer: BatchWriter | None = None

    async def setup(self) -> None:
        self._client = Client([self.endpoint], credentials=self.credentials, timeout=30)
        self._writer = BatchWriter(self._client.transport, max_items=256, timeout=30)

    async def put(self, key: str, value: bytes) -> None:
        assert self._writer is not None
        cm = core_pb2.ConfigMap(metadata={"name": _name(key), "namespace": "default"})
        cm.binary_data["v"] = value
        await asyncio.wrap_future(self._writer.create(cm))

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None
        if self._client is not None:
            self._client.close()
            self._client = None


class HakubeBatchCluster(HakubeCluster):
    def target(self, member: str) -> HakubeBatchTarget:  # type: ignore[override]
        return HakubeBatchTarget(self._by_name[member].api, self.credentials, name=self.name)


class HakubeBatchSystem(HakubeSystem):
    name = "hakube-batch"
    cluster_class = HakubeBatchCluster
