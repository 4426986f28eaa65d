"""A follower that installs the leader's snapshot must not let its watchers skip the changes the
snapshot jumped over.

Found by a 30-minute fault run (seed 8, docs/reliability.md "Watch: a snapshot that skipped
changes"): a master paused past the leader's log compaction caught up by installing a
snapshot, no events were published for the revisions it skipped, and its open watch went on
from the next change — 38 changes missing, silently. Here a real StoreFSM replaces its state
from a dump of a second one that went ahead (what pysyncobj does on a snapshot install: it
calls ``_deserialize`` with the leader's serialized state), with a real WatchHub attached.
"""

from __future__ import annotations

import asyncio
import pickle

import pytest

from hakube.api import kinds
from hakube.api.v1 import api_pb2
from hakube.apiserver.errors import Unavailable
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.watch import Watcher, WatchHub
from hakube.store import ops
from hakube.store.fsm import StoreFSM

pytestmark = pytest.mark.timeout(30)
CM = kinds.BY_NAME["ConfigMap"]


def _put(fsm: StoreFSM, name: str) -> None:
    cm = CM.message(metadata={"name": name, "namespace": "default"})
    op = ops.Create("", "ConfigMap", "default", name, cm.SerializeToString(), {}, {}, 0)
    fsm.apply_batch([ops.wire(op)], _doApply=True)


def _revisions(frames: list[bytes | None]) -> list[int]:
    return [int(api_pb2.WatchEvent.FromString(f).resource_version) for f in frames if f]


def _queued(w: Watcher) -> list[bytes | None]:
    out: list[bytes | None] = []
    while not w.queue.empty():
        out.append(w.queue.get_nowait())
    return out


async def _settle() -> None:
    for _ in range(5):  # callbacks handed over with call_soon_threadsafe run on later turns
        await asyncio.sleep(0)


def _two_replicas() -> tuple[StoreFSM, StoreFSM]:
    """A follower and a leader with the same first three changes; the leader then makes five
    more the follower never applies."""
    follower, leader = StoreFSM(), StoreFSM()
    for name in ("a", "b", "c"):
        _put(follower, name)
        _put(leader, name)
    for i in range(5):
        _put(leader, f"later-{i}")
    return follower, leader


def _install(follower: StoreFSM, leader: StoreFSM) -> None:
    follower._deserialize(pickle.loads(pickle.dumps(leader._serialize())))


def test_installing_a_snapshot_ends_every_stream_and_resuming_gets_the_skipped_changes() -> None:
    async def main() -> None:
        follower, leader = _two_replicas()
        hub = WatchHub(follower, MasterMetrics())
        hub.attach(asyncio.get_running_loop())
        w = hub.subscribe(CM, "default", None, None, 3)
        _install(follower, leader)
        await _settle()
        frames = _queued(w)
        assert frames == [None], "the stream must end, not go on past a gap"
        assert isinstance(w.closed_with, Unavailable)
        assert "snapshot (revision 3 to 8)" in str(w.closed_with)
        # The client resumes from the last revision it received: the installed history has
        # every change it missed.
        again = hub.subscribe(CM, "default", None, None, 3)
        assert again.initial is not None
        assert _revisions(list(again.initial)) == [4, 5, 6, 7, 8]
        _put(follower, "next")
        await _settle()
        assert _revisions(_queued(again)) == [9]

    asyncio.run(main())


def test_without_the_callback_the_open_stream_skips_the_changes() -> None:
    """The control: what a watcher saw before the fix (shows the test above can fail)."""

    async def main() -> None:
        follower, leader = _two_replicas()
        hub = WatchHub(follower, MasterMetrics())
        hub.attach(asyncio.get_running_loop())
        follower.replaced = None
        w = hub.subscribe(CM, "default", None, None, 3)
        _install(follower, leader)
        _put(follower, "next")
        await _settle()
        assert _revisions(_queued(w)) == [9]  # 4..8 never arrive, and nothing says so

    asyncio.run(main())
