"""kill -9 of the master a client is talking to, mid-watch and mid-write: the client must carry
on by itself, and nothing may be lost or happen twice."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hakube.api.v1 import core_pb2
from hakube.client import ADDED, Client, Unavailable, WatchEvent
from hakube.local.cluster import MasterProc
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def pin(client: Client, master: MasterProc) -> None:
    """Make ``master`` the endpoint the client uses first."""
    client.transport._current = client.transport.endpoints.index(master.api)


def namespace(client: Client, name: str) -> str:
    client.create(core_pb2.Namespace(metadata={"name": name}))
    return name


def test_a_watch_whose_master_is_killed_resumes_elsewhere_without_loss_or_repeats(
    healed: LocalCluster,
) -> None:
    c = healed
    leader = c.leader()
    with Client(c.endpoints(), timeout=30) as watcher, Client(c.endpoints(), timeout=30) as writer:
        ns = namespace(writer, "fo-watch")
        pin(watcher, leader)
        events: list[WatchEvent] = []
        w = watcher.watch("configmaps", namespace=ns)
        reader = threading.Thread(target=lambda: events.extend(w), daemon=True)
        reader.start()
        wait_for(lambda: w.endpoint == leader.api, 10, "the watch to open on the leader")
        n, kill_at = 120, 40
        written: list[str] = []

        def write() -> None:
            for i in range(n):
                if i == kill_at:
                    c.kill(leader)
                obj = writer.create(
                    core_pb2.ConfigMap(metadata={"name": f"e-{i:03d}", "namespace": ns})
                )
                written.append(obj.metadata.name)

        t = threading.Thread(target=write, daemon=True)
        t.start()
        t.join(60)
        assert len(written) == n, "the writer did not get through the failover"
        # A last write after all the others: once its event is in, any (wrong) repeat of an
        # earlier event would have arrived before it, since events come in revision order.
        writer.create(core_pb2.ConfigMap(metadata={"name": "sentinel", "namespace": ns}))
        wait_for(
            lambda: (
                events
                and events[-1].object is not None
                and events[-1].object.metadata.name == "sentinel"
            ),
            30,
            "the sentinel event",
        )
        events.pop()
        w.stop()
        reader.join(5)
    assert [(e.type, e.object and e.object.metadata.name) for e in events] == [
        (ADDED, x) for x in written
    ]
    revs = [e.resource_version for e in events]
    assert revs == sorted(set(revs))
    assert w.reconnects >= 1 and w.endpoint == ""


def test_writes_to_a_killed_leader_complete_once_each(healed: LocalCluster) -> None:
    c = healed
    leader = c.leader()
    errors: list[BaseException] = []
    progress = {"n": 0}
    lock = threading.Lock()
    per_thread = 50
    with Client(c.endpoints(), timeout=30) as setup:
        ns = namespace(setup, "fo-write")
        setup.create(
            core_pb2.ConfigMap(metadata={"name": "counter", "namespace": ns}, data={"n": "0"})
        )
    clients = [Client(c.endpoints(), timeout=30) for _ in range(5)]
    for cl in clients:
        pin(cl, leader)

    def run(fn: Any) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t

    def bump() -> None:
        with lock:
            progress["n"] += 1

    def creator(cl: Client, prefix: str) -> None:
        for i in range(per_thread):
            cl.create(core_pb2.ConfigMap(metadata={"name": f"{prefix}-{i}", "namespace": ns}))
            bump()

    def generator(cl: Client) -> None:
        for _ in range(per_thread):
            cl.create(core_pb2.ConfigMap(metadata={"generate_name": "g-", "namespace": ns}))
            bump()

    def incrementer(cl: Client) -> None:
        # Compare-and-swap increments: a lost answer must not turn into a second increment.
        for _ in range(per_thread):
            cur = cl.configmaps.get("counter", namespace=ns)
            cur.data["n"] = str(int(cur.data["n"]) + 1)
            cl.update(cur)
            bump()

    threads = [
        run(lambda: creator(clients[0], "a")),
        run(lambda: creator(clients[1], "b")),
        run(lambda: creator(clients[2], "c")),
        run(lambda: generator(clients[3])),
        run(lambda: incrementer(clients[4])),
    ]
    wait_for(lambda: progress["n"] >= 60, 30, "writes to get going")
    killed_at = time.monotonic()
    c.kill(leader)
    for t in threads:
        t.join(90)
    assert not errors, f"writes failed: {errors!r}"
    assert progress["n"] == 5 * per_thread
    with Client([m.api for m in c.masters if m.alive], timeout=30) as check:
        items = check.list("configmaps", namespace=ns).items
        names = sorted(o.metadata.name for o in items)
        assert [n for n in names if n[:2] in ("a-", "b-", "c-")] == sorted(
            f"{p}-{i}" for p in "abc" for i in range(per_thread)
        )
        assert len([n for n in names if n.startswith("g-")]) == per_thread
        assert check.configmaps.get("counter", namespace=ns).data["n"] == str(per_thread)
    for cl in clients:
        cl.close()
    assert time.monotonic() - killed_at < 60


def test_without_a_quorum_calls_fail_by_the_deadline_naming_each_masters_trouble(
    healed: LocalCluster,
) -> None:
    c = healed
    survivor, *others = c.masters
    for m in others:
        c.kill(m)
    with Client(c.endpoints(), timeout=3) as client:
        t0 = time.monotonic()
        with pytest.raises(Unavailable) as exc:
            client.configmaps.get("anything")
        assert time.monotonic() - t0 < 6
    text = str(exc.value)
    assert f"{survivor.api}: this master is not in a quorum with a leader" in text
    assert all(f"{m.api}: connection refused" in text for m in others)
    assert set(exc.value.endpoints) == set(c.endpoints())
