"""A one-master cluster inside the test process, whose store a test can write directly.

Tests of defence in depth need an object the API server would refuse (a pod whose volume paths
leave its directory) to be in the store anyway, as after a restore of an old snapshot or a
bug in an older master. ``InProcessMaster.write_raw`` proposes the store's own create command
through the master's Raft, skipping validation and admission; the process's other components
(agents, clients) see the object as any other. Nothing like it exists in the API: the only way
in is holding the ``Master`` object, i.e. being the master process.
"""

from __future__ import annotations

import os
import time
import uuid
from types import TracebackType
from typing import Any

from hakube.api import kinds
from hakube.lifecycle import Running
from hakube.local.cluster import cluster_pki, free_ports
from hakube.master import Master, MasterSettings
from hakube.store import fsm as store
from hakube.store.ops import Create, wire
from hakube.testing import pki as testpki


class InProcessMaster:
    """A single master run on a thread of this process; a context manager."""

    def __init__(self, base_dir: str) -> None:
        api, raft = free_ports(2)
        self.endpoint = f"127.0.0.1:{api}"
        pki_dir = os.path.join(base_dir, "pki")
        cluster_pki(pki_dir, {"m1": ["127.0.0.1"]}, testpki.shared())
        self.master = Master(
            MasterSettings(
                name="m1",
                data_dir=os.path.join(base_dir, "m1"),
                api_listen=self.endpoint,
                raft_listen=f"127.0.0.1:{raft}",
                peers={},
                pki_dir=pki_dir,
            )
        )
        self._running: Running | None = None

    def __enter__(self) -> InProcessMaster:
        self._running = Running.start(self.master, name="inprocess-master")
        if not self._running.wait_ready(30):
            self._running.stop(15)
            raise AssertionError(f"the in-process master is not ready: {self._running.error!r}")
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._running is not None:
            self._running.stop(15)

    def write_raw(self, obj: Any) -> str:
        """Store ``obj`` as it is (no defaulting, validation or admission); returns its uid."""
        kind = kinds.BY_NAME[type(obj).DESCRIPTOR.name]
        meta = obj.metadata
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        obj.kind, obj.api_version = kind.name, kind.api_version
        value = obj.SerializeToString(deterministic=True)
        fields = kinds.selectable_fields(kind, obj)
        assert self.master.raft is not None
        op = wire(
            Create("", kind.name, meta.namespace, meta.name, value, dict(meta.labels), fields)
        )
        code, _, _ = self.master.raft.proposer.submit(op).result(10)
        assert code == store.OK, f"raw create of {kind.name} {meta.name}: store answered {code}"
        return str(meta.uid)
