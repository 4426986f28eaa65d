"""What Raft puts on the wire and on disk: each byte of a large value crosses to each follower
once, and data written with pysyncobj's own encoding (protocol 2, compressed) still loads."""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pysyncobj.pickle as ps_pickle

from hakube.store import datadir, ops
from hakube.store import fsm as store
from hakube.testing.raft import InProcessCluster
from hakube.testing.wait import wait_for

VALUE = 256 * 1024
WRITES = 24


def test_a_large_value_crosses_to_each_follower_about_once(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    transport = leader.syncobj._SyncObj__transport  # type: ignore[attr-defined]
    original = transport.send
    sent = [0]

    def counting_send(node: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "append_entries":
            # What pysyncobj's TCP connection will write for this message, as it encodes it.
            sent[0] += len(zlib.compress(ps_pickle.dumps(message), 0))
        original(node, message)

    transport.send = counting_send
    blob = os.urandom(VALUE)  # incompressible, and mostly bytes >= 0x80
    batch = [
        ops.wire(ops.Create("", "ConfigMap", "default", f"big-{i}", blob, {}, {}, 0))
        for i in range(WRITES)
    ]
    with ThreadPoolExecutor(4) as pool:  # several in flight: the pipeline is exercised
        results = list(pool.map(lambda op: leader.proposer.submit(op).result(60), batch))
    assert all(r[0] == store.OK for r in results)
    for node in c.nodes.values():
        wait_for(lambda n=node: n.fsm.count("ConfigMap") == WRITES, 30, "replicas to apply")
    transport.send = original
    payload = 2 * WRITES * VALUE  # two followers
    # Protocol 2 doubled bytes >= 0x80 (twice: the call, then the message), and pysyncobj
    # re-sent entries in flight whenever an older acknowledgement arrived.
    assert sent[0] < 1.25 * payload, f"{sent[0] / payload:.2f}x the payload was sent"


def test_a_dump_written_by_stock_pysyncobj_still_loads(tmp_path: Any) -> None:
    fsm = store.StoreFSM()
    op = ops.wire(ops.Create("", "ConfigMap", "default", "old", b"\xff" * 100, {}, {}, 0))
    fsm.apply_batch([op], _doApply=True)
    d = str(tmp_path / "m1")
    datadir.seed(
        d, fsm.capture(), name="m1", raft="127.0.0.1:1", api="", peers={}, term=3,
        cluster_id="c1",
    )  # fmt: skip
    dump = os.path.join(d, datadir.DUMP)
    with open(dump, "rb") as f, gzip.GzipFile(fileobj=f) as g:
        data = pickle.load(g)
    with open(dump, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9) as g:
        pickle.dump(data, g, 2)  # pysyncobj's defaults before hakube.store.encoding
    state = datadir.load_local(d)
    rec = state.fsm.get("ConfigMap", "default", "old")
    assert rec is not None and rec.value == b"\xff" * 100
    assert state.term == 3
