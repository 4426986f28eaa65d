"""A member whose log ends in entries no majority took (an old leader cut off while it still
accepted writes, or paused and woken up) must catch up with the new leader within moments.

Found by the fault run in the suite (CI, seed 20261205): after the final heal one master stayed
thousands of entries behind for two minutes while the leader recorded it as matching nothing.
pysyncobj answers an append-entries whose previous entry conflicts with "try the index
before", and one whose previous entry it lacks with "try after my last entry" — after the
conflicting entries. A leader sends many messages per round trip (a backlog in several
messages, and each new entry at once), so the second answer always overtakes the first and
the leader tries the same place again, for ever."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from hakube.store import fsm as store
from hakube.store import ops
from hakube.store import raft as raft_mod
from hakube.store.raft import RaftNode
from hakube.testing.raft import Cut, InProcessCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)

BIG = 900 * 1024
"""Below the largest object; six of them need two append-entries messages (4 MiB each)."""
LOST = 20
"""Entries only the old leader appended: pysyncobj steps back over them one round trip each,
when a later message does not overtake the step."""


def _create(node: RaftNode, name: str, size: int = 10) -> object:
    return node.proposer.submit(
        ops.wire(ops.Create("", "Pod", "default", name, b"v" * size, {}, {}, 0))
    )


def _last(node: RaftNode) -> tuple[int, int]:
    _, idx, term = node.syncobj._SyncObj__raftLog[-1]  # type: ignore[attr-defined]
    return int(idx), int(term)


def _commit(node: RaftNode) -> int:
    return int(node.syncobj._SyncObj__raftCommitIndex)  # type: ignore[attr-defined]


def _diverge(c: InProcessCluster) -> tuple[RaftNode, RaftNode]:
    """Cut the leader off while it appends writes nobody else gets, let the others elect a new
    leader and write a backlog of several messages; returns (old leader, new leader)."""
    old = c.leader()
    old_name = old.settings.name
    for i in range(5):
        assert _create(old, f"common-{i}").result(10)[0] == store.OK  # type: ignore[attr-defined]
    wait_for(lambda: all(_last(n) == _last(old) for n in c.nodes.values()), 10, "a common log")
    cut = Cut(c, old_name)
    for i in range(LOST):  # appended on the old leader only, one entry each; never committed
        before = _last(old)[0]
        _create(old, f"lost-{i}")
        wait_for(lambda b=before: _last(old)[0] > b, 10, "an entry only the old leader has")
    assert _last(old)[0] - _commit(old) >= LOST
    others = [n for n in c.nodes.values() if n is not old]
    wait_for(lambda: any(n.is_leader() for n in others), 20, "a new leader")
    new = next(n for n in others if n.is_leader())
    futures = [_create(new, f"big-{i}", BIG) for i in range(6)]
    for f in futures:
        assert f.result(20)[0] == store.OK  # type: ignore[attr-defined]
    assert _last(old)[1] < _last(new)[1]
    cut.heal()
    return old, new


def _catch_up_while_writing(old: RaftNode, new: RaftNode, timeout: float) -> None:
    """Keep writing (each new entry goes to every member at once, as under load) until the old
    leader holds the new leader's state."""
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            _create(new, f"steady-{i}").result(10)  # type: ignore[attr-defined]
            i += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_for(
            lambda: old.fsm.get("Pod", "default", "big-5") is not None,
            timeout,
            f"{old.settings.name} to catch up (last {_last(old)}, leader's {_last(new)})",
        )
    finally:
        stop.set()
        writer.join(15)


def test_an_old_leader_with_entries_nobody_took_catches_up_at_once(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3, max_inflight=LOST)
    for name in c.addrs:
        c.start(name)
    old, new = _diverge(c)
    _catch_up_while_writing(old, new, 15)
    assert old.fsm.get("Pod", "default", "lost-0") is None
    assert new.fsm.get("Pod", "default", "lost-0") is None
    wait_for(lambda: old.fsm.revision == new.fsm.revision, 10, "the same revision")


def test_without_the_hint_the_old_leader_stays_behind(
    raft_cluster: Callable[..., InProcessCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: pysyncobj's own answers (shows the test above can fail)."""
    monkeypatch.setattr(raft_mod, "_point_back_past_conflicts", lambda *a: None)
    c = raft_cluster(3, max_inflight=LOST)
    for name in c.addrs:
        c.start(name)
    old, new = _diverge(c)
    with pytest.raises(TimeoutError):
        _catch_up_while_writing(old, new, 8)


def test_a_follower_behind_the_leaders_compaction_installs_a_snapshot_and_says_so(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    """The path a fault run's watch gap took (docs/reliability.md): a follower cut off while
    the leader compacts its log past the follower's last entry catches up from a snapshot,
    and its store reports the jump (the watch hub ends its streams on it:
    tests/apiserver/test_watch_snapshot.py)."""
    c = raft_cluster(3, compaction_min_entries=20)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    victim = next(n for n in c.nodes.values() if n is not leader)
    jumps: list[tuple[int, int]] = []
    victim.fsm.replaced = lambda before, after: jumps.append((before, after))
    cut = Cut(c, victim.settings.name)
    for i in range(60):
        assert _create(leader, f"p{i}").result(10)[0] == store.OK  # type: ignore[attr-defined]
    leader.syncobj.forceLogCompaction()
    wait_for(
        lambda: leader.syncobj._SyncObj__raftLog[0][1] > _last(victim)[0],  # type: ignore[attr-defined]
        30,
        "the leader's log compacted past the cut-off follower's last entry",
    )
    cut.heal()
    wait_for(lambda: victim.fsm.revision == leader.fsm.revision, 30, "the follower to catch up")
    assert jumps and jumps[0][0] < jumps[0][1] <= leader.fsm.revision
