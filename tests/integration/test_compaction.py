"""Log compaction of a large state must not stall Raft long enough to cost an election."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import pytest

from hakube.api import kinds
from hakube.api.v1 import api_pb2, core_pb2
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(300)
OBJECTS = 200
"""200 x 256 KiB = 50 MiB of state: each forked dump takes seconds to write."""


def dump_size(c: LocalCluster, i: int) -> int:
    path = os.path.join(c.masters[i].data_dir, "raft.dump")
    return os.path.getsize(path) if os.path.exists(path) else 0


def test_compacting_a_large_state_keeps_the_leader_and_writes_flowing(tmp_path: Any) -> None:
    with LocalCluster(str(tmp_path), 3, extra_args=["--compaction-min-entries", "200"]) as c:
        api = Api(c.endpoints())
        blob = os.urandom(256 * 1024)  # incompressible: the dump really is that large
        lock = threading.Lock()
        todo = list(range(OBJECTS))

        def load() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                cm = core_pb2.ConfigMap(metadata={"name": f"big-{i}"}, binary_data={"blob": blob})
                api.call(
                    "Create",
                    api_pb2.CreateRequest(object=kinds.wrap(cm), request_id=str(uuid.uuid4())),
                    deadline=120,
                    per_try=20,
                )

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        c.leader()
        term = max(c.status(m).term for m in c.masters)
        latencies: list[float] = []
        i = 0
        deadline = time.monotonic() + 120
        # Each master compacts on its own once 200 entries pass: writes continue meanwhile.
        while not all(dump_size(c, k) > OBJECTS * 250 * 1024 for k in range(3)):
            assert time.monotonic() < deadline, "masters did not write their dumps"
            t0 = time.monotonic()
            api.create_configmap(f"during-{i}")
            latencies.append(time.monotonic() - t0)
            i += 1
        for _ in range(20):  # and a few more right after
            t0 = time.monotonic()
            api.create_configmap(f"during-{i}")
            latencies.append(time.monotonic() - t0)
            i += 1
        assert max(c.status(m).term for m in c.masters) == term, "compaction cost an election"
        assert max(latencies) < 2.0, f"a write took {max(latencies):.2f}s during compaction"
        wait_for(lambda: len(api.names()) >= OBJECTS + i, 30, "all objects listed")
        api.close()
