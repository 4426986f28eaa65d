"""Watch fan-out with watchers indexed by a key=value label requirement.

A real StoreFSM applies the writes and a real WatchHub dispatches them; each watcher's queue is
read back to check exactly which events it got, in order. Indexed and unindexed watchers must see
the same events a plain selector evaluation would give them, including a label change that moves
an object out of one watcher's selection and into another's.
"""

from __future__ import annotations

import asyncio

import pytest

from hakube.api import kinds
from hakube.api.labels import matcher, parse_labels
from hakube.api.v1 import api_pb2
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.objects import compile_selectors
from hakube.apiserver.watch import Watcher, WatchHub
from hakube.store import ops
from hakube.store.fsm import StoreFSM

pytestmark = pytest.mark.timeout(30)
CM = kinds.BY_NAME["ConfigMap"]


def drain(w: Watcher) -> list[tuple[str, str, dict[str, str]]]:
    out = []
    while not w.queue.empty():
        data = w.queue.get_nowait()
        assert data is not None
        ev = api_pb2.WatchEvent.FromString(data)
        meta = ev.object.config_map.metadata
        out.append((ev.type, meta.name, dict(meta.labels)))
    return out


def write(fsm: StoreFSM, op: tuple[object, ...]) -> None:
    fsm.apply_batch([op], _doApply=True)


def value(name: str, labels: dict[str, str]) -> bytes:
    cm = CM.message(metadata={"name": name, "namespace": "default", "labels": labels})
    return cm.SerializeToString()


def test_indexed_watchers_get_exactly_their_events_in_order() -> None:
    async def main() -> None:
        fsm = StoreFSM()
        hub = WatchHub(fsm, MasterMetrics())
        hub.attach(asyncio.get_running_loop())

        def sub(selector: str) -> Watcher:
            lm, fm = compile_selectors(CM, selector, "")
            return hub.subscribe(CM, "default", lm, fm, 0)

        a, b = sub("shard=a"), sub("shard=b,tier!=db")
        everyone, either = sub(""), sub("shard in (a,b)")

        def put(code: str, name: str, labels: dict[str, str], rev: int = 0) -> None:
            if code == "c":
                write(
                    fsm,
                    ops.wire(
                        ops.Create(
                            "", "ConfigMap", "default", name, value(name, labels), labels, {}, 0
                        )
                    ),
                )
            else:
                write(
                    fsm,
                    ops.wire(
                        ops.Update(
                            "", "ConfigMap", "default", name, value(name, labels), labels, {}, rev
                        )
                    ),
                )

        put("c", "x", {"shard": "a"})
        put("c", "y", {"shard": "b", "tier": "db"})  # b's selector excludes it
        put("u", "x", {"shard": "b"})  # leaves a, enters b
        put("c", "z", {"other": "1"})
        write(fsm, ops.wire(ops.Delete("", "ConfigMap", "default", "x", 0)))
        await asyncio.sleep(0)  # dispatch runs on the loop
        await asyncio.sleep(0)

        assert drain(a) == [("ADDED", "x", {"shard": "a"}), ("DELETED", "x", {"shard": "b"})]
        assert drain(b) == [("ADDED", "x", {"shard": "b"}), ("DELETED", "x", {"shard": "b"})]
        assert [(t, n) for t, n, _ in drain(everyone)] == [
            ("ADDED", "x"),
            ("ADDED", "y"),
            ("MODIFIED", "x"),
            ("ADDED", "z"),
            ("DELETED", "x"),
        ]
        assert [(t, n) for t, n, _ in drain(either)] == [
            ("ADDED", "x"),
            ("ADDED", "y"),
            ("MODIFIED", "x"),
            ("DELETED", "x"),
        ]

        hub.unsubscribe(a)
        put("c", "w", {"shard": "a"})
        await asyncio.sleep(0)
        assert drain(a) == []
        assert [n for _, n, _ in drain(everyone)] == ["w"]

    asyncio.run(main())


def test_compiled_single_equality_matches_like_the_generic_rule() -> None:
    cases = [{}, {"k": ""}, {"k": "v"}, {"k": "w"}, {"j": "v"}]
    for text in ("k=v", "k=", "k==v", "k=v,j!=x", "k!=v", "k in (v,w)", "k", "!k"):
        reqs = parse_labels(text)
        m = matcher(reqs)
        assert m is not None
        for labels in cases:
            assert m(labels) == all(r.matches(labels) for r in reqs), (text, labels)


def test_a_bookmark_never_overtakes_an_event_waiting_in_the_queue() -> None:
    """The bookmark timeout and a dispatch landing in one loop turn (a master resuming from
    SIGSTOP: the fault runs found a watcher missing one event this way). The hub raises
    ``last_rev`` when it queues an event; a bookmark taken from it while the event still waits
    would carry a revision above the event's, and the client drops events at or below the last
    revision it saw. An interval of 0 makes the timeout win every race with the queued event."""

    async def main() -> list[tuple[str, int]]:
        fsm = StoreFSM()
        hub = WatchHub(fsm, MasterMetrics())
        hub.attach(asyncio.get_running_loop())
        lm, fm = compile_selectors(CM, "", "")
        w = hub.subscribe(CM, "default", lm, fm, 0)
        labels = {"app": "x"}
        op = ops.Create("", "ConfigMap", "default", "a", value("a", labels), labels, {}, 0)
        write(fsm, ops.wire(op))
        await asyncio.sleep(0)  # the dispatch: the event is queued, last_rev covers it
        assert not w.queue.empty() and w.last_rev == fsm.revision
        seen: list[tuple[str, int]] = []
        stream = hub.stream(w, bookmarks=True, interval=0)
        async for data in stream:
            ev = api_pb2.WatchEvent.FromString(data)
            seen.append((ev.type, int(ev.resource_version)))
            if len(seen) == 2:
                break
        await stream.aclose()
        return seen

    seen = asyncio.run(main())
    assert seen[0][0] == "ADDED", f"a bookmark went ahead of the queued event: {seen}"
    assert seen[1] == ("BOOKMARK", seen[0][1])
