"""fsync-before-ack (RaftSettings.fsync / ``hakube master --fsync``) on real pysyncobj members.

The property: no Raft message leaves a member while its journal holds changes not yet synced to
disk, so a follower's acknowledgement (and the leader's commit, and so the client's answer)
always follows the sync of the entries concerned. A checker sits under the durability hook, on the
real transport, and records any message sent while the journal is dirty.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.durable import DurableJournal
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
            if d.dirty:
                violations.append(f"{name} sent {message.get('type')} with an unsynced journal")
            sent[name] = sent.get(name, 0) + 1
            return real(peer, message)

        transport.send = checked  # the real transport, observed
        durable.install()  # wraps `checked`: syncs first, then sends
        durables[name] = durable
    leader = c.leader()
    for round_ in range(5):
        batch = [
            ops.Create("", "Pod", "default", f"p{round_}-{i}", b"x" * 200, {}, {}, 0).wire()
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
            ops.Create("", "Pod", "default", f"q{i}-{j}", b"y", {}, {}, 0).wire() for j in range(5)
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
            node, [ops.Create("", "Pod", "default", f"p{i}", b"x", {}, {}, 0).wire()]
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
