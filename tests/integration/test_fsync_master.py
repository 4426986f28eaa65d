"""Masters started with --fsync: writes are synced before acknowledgement and all come back
after kill -9 of every master."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from typing import Any

import pytest

from hakube.api import kinds
from hakube.api.v1 import api_pb2, core_pb2
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(180)


def journal_syncs(metrics_addr: str) -> float:
    text = urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("hakube_raft_journal_syncs "):
            return float(line.split()[1])
    raise AssertionError("hakube_raft_journal_syncs is not exported")


def test_fsync_masters_keep_every_acknowledged_write_across_kill_of_all(tmp_path: Any) -> None:
    with LocalCluster(str(tmp_path), 3, extra_args=["--fsync"]) as c:
        api = Api(c.endpoints())
        acked: list[str] = []
        lock = threading.Lock()

        def writer(t: int) -> None:
            for i in range(40):
                name = f"fs-{t}-{i}"
                cm = core_pb2.ConfigMap(metadata={"name": name, "namespace": "default"})
                api.call(
                    "Create",
                    api_pb2.CreateRequest(object=kinds.wrap(cm), request_id=str(uuid.uuid4())),
                )
                with lock:
                    acked.append(name)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(acked) == 160
        for m in c.masters:
            assert journal_syncs(m.metrics) > 0, f"{m.name} never synced its journal"
        for m in c.masters:
            c.kill(m)
        for m in c.masters:
            c.start(m)
        c.wait_ready(timeout=60)
        wait_for(lambda: set(acked) <= api.names(), 30, "every acknowledged write back")
        api.close()
