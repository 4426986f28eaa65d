"""fsync-before-ack (RaftSettings.fsync / ``hakube master --fsync``) on real pysyncobj members.

The property: a follower sends nothing while its journal holds changes not yet synced to disk,
so its acknowledgement always follows the sync of the entries concerned; the leader sends new
entries before its own sync (in parallel with it) but commits an entry only once a majority holds
it durably, itself counted only for what its completed sync covers. A checker sits under the
durability hook, on the real transport, and records any message that breaks either rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.durable import UNSYNCED_LEADER_MESSAGES, DurableJournal, durable_commit_index
from hakube.testing.raft import InProcessCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def submit_all(node: Any, batch: list[store.Op], timeout: float = 20) -> list[store.Result]:
    futs = [node.proposer.submit(op) for op in batch]
    return [f.result(timeout) for f in futs]


def test_no_message_leaves_a_member_before_its_journal_is_synced(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3, fsync=False)  # the test installs the hook itself, under its checker
    durables: dict[str, DurableJournal] = {}
    violations: list[str] = []
    sent: dict[str, int] = {}
    for name in c.addrs:
        node = c.start(name)
        transport = node.syncobj._SyncObj__transport
        real_send = transport.send
        durable = DurableJournal(node.syncobj)

        def checked(
            peer: Any,
            message: Any,
            name: str = name,
            real: Any = real_send,
            d: DurableJournal = durable,
        ) -> Any:
            kind = message.get("type")
            leading = d._is_leader()
            if d.dirty and not (leading and kind in UNSYNCED_LEADER_MESSAGES):
                violations.append(f"{name} sent {kind} with an unsynced journal")
            if leading and "commit_index" in message:
                durable = sorted((x.synced_index for x in durables.values()), reverse=True)
                if message["commit_index"] > durable[len(durable) // 2]:
                    violations.append(f"{name} committed {message['commit_index']}: {durable}")
            sent[name] = sent.get(name, 0) + 1
            return real(peer, message)

        transport.send = checked  # the real transport, observed
        durables[name] = durable
        durable.install()  # wraps `checked`: syncs first (or, on the leader, after), then sends
    leader = c.leader()
    for round_ in range(5):
        batch = [
            ops.wire(ops.Create("", "Pod", "default", f"p{round_}-{i}", b"x" * 200, {}, {}, 0))
            for i in range(200)
        ]
        assert all(r[0] == store.OK for r in submit_all(leader, batch))
    for node in c.nodes.values():
        wait_for(lambda n=node: n.fsm.revision == 1000, 10, "replicas to apply")
    assert not violations, violations[:3]
    for name, d in durables.items():
        assert d.syncs > 0, f"{name} never synced its journal"
        assert sent.get(name, 0) > 0
    # Group commit: far fewer syncs than writes on every member.
    assert max(d.syncs for d in durables.values()) < 500
    for d in durables.values():
        d.close()


@pytest.mark.parametrize(
    ("leader_synced", "followers", "expected"),
    [
        (4, [9, 4], 4),  # leader not synced, one follower of two acked: not committed
        (4, [9, 9], 9),  # both followers: committed without the leader
        (9, [9, 4], 9),  # leader synced and one follower: committed
        (9, [7, 4], 7),  # the majority's durable prefix, not more
        (9, [], 9),  # a lone member: its own sync
        (4, [], 4),
    ],
)
def test_the_leader_counts_itself_only_for_what_it_has_synced(
    leader_synced: int, followers: list[int], expected: int
) -> None:
    terms = {i: 3 for i in range(1, 10)}
    got = durable_commit_index(4, 9, leader_synced, followers, terms.get, current_term=3)
    assert got == expected


def test_an_older_term_entry_is_never_committed_by_counting() -> None:
    """Raft's rule (the thesis' figure 3.7): a majority holding an entry of an older term does
    not commit it; it commits with the first entry of the leader's term above it."""
    terms = {5: 2, 6: 2, 7: 3}.get
    assert durable_commit_index(4, 7, 6, [6, 7], terms, current_term=3) == 4
    assert durable_commit_index(4, 7, 7, [6, 7], terms, current_term=3) == 7


def test_an_unsynced_leader_commits_only_with_both_followers(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    """On real members: the leader's sync is held back (its sync lock taken), so only the
    followers' durable copies can make a majority."""
    c = raft_cluster(3, fsync=True)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    d = leader.durable
    assert d is not None
    op = ops.wire(ops.Create("", "Pod", "default", "warm", b"x", {}, {}))
    assert submit_all(leader, [op])[0][0] == store.OK
    with d._sync_lock:  # the leader cannot sync: both followers are needed
        [res] = submit_all(
            leader, [ops.wire(ops.Create("", "Pod", "default", "both", b"x", {}, {}))]
        )
        assert res[0] == store.OK
        assert d.dirty, "the leader synced although its sync lock was held"
        follower = next(n for n, node in c.nodes.items() if node is not leader)
        c.stop(follower)
        fut = leader.proposer.submit(
            ops.wire(ops.Create("", "Pod", "default", "one", b"x", {}, {}))
        )
        with pytest.raises(TimeoutError):
            fut.result(1.5)  # one follower of two and an unsynced leader: no majority on disk
        assert leader.syncobj.raftCommitIndex < leader.last_log_index()
    assert fut.result(10)[0] == store.OK  # the leader's sync completes the majority
    assert not d.dirty


def test_fsync_members_restart_with_every_acknowledged_write(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3, fsync=True, compaction_min_entries=20)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    acked = 0
    for i in range(40):  # past the compaction threshold: the dump is synced before the drop
        batch = [
            ops.wire(ops.Create("", "Pod", "default", f"q{i}-{j}", b"y", {}, {}, 0))
            for j in range(5)
        ]
        acked += sum(r[0] == store.OK for r in submit_all(leader, batch))
    assert acked == 200
    assert all(n.durable is not None and n.durable.syncs > 0 for n in c.nodes.values())
    c.restart_all_and_expect("Pod", 200)


def test_a_lone_member_syncs_every_append_before_it_commits(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    """One master sends no message before it commits, so the send hook alone never syncs."""
    c = raft_cluster(1, fsync=True)
    node = c.start(next(iter(c.addrs)))
    wait_for(lambda: node.is_leader(), 10, "the lone member to lead")
    assert node.durable is not None
    for i in range(20):
        [res] = submit_all(
            node, [ops.wire(ops.Create("", "Pod", "default", f"p{i}", b"x", {}, {}, 0))]
        )
        assert res[0] == store.OK
        assert not node.durable.dirty, f"write {i} acknowledged with an unsynced journal"
    assert node.durable.syncs >= 20


def _fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return seen


def test_term_and_vote_are_durable_without_fsync(
    raft_cluster: Callable[..., InProcessCluster],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member that forgets its vote after a power loss can vote twice in one term."""
    seen = _fsynced_paths(monkeypatch)
    c = raft_cluster(3, fsync=False)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    meta = leader.syncobj._SyncObj__raftLog._FileJournal__metaStorer.getPath()
    assert any(p == meta + ".tmp" or p == meta for p in seen), seen[:10]
    assert os.path.dirname(meta) in seen


def test_replaced_files_are_synced_then_renamed_then_their_directory_synced(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pysyncobj import serializer

    from hakube.store.durable import durable_replace, install_file_hooks

    install_file_hooks()
    assert serializer.atomicReplace is durable_replace  # dumps and received snapshots
    src, dst = tmp_path / "dump.tmp", tmp_path / "dump"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os,
        "fsync",
        lambda fd: (
            order.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))),
            real_fsync(fd),
        )[1],
    )
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append("rename"), real_replace(a, b))[1])
    serializer.atomicReplace(str(src), str(dst))
    assert order == ["fsync dump.tmp", "rename", f"fsync {tmp_path.name}"]
    assert dst.read_bytes() == b"new"
