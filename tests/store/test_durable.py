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
from hakube.store.durable import DurableJournal
from hakube.testing.raft import InProcessCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def submit_all(node: Any, ops: list[store.Op], timeout: float = 20) -> list[store.Result]:
    futs = [node.proposer.submit(op) for op in ops]
    return [f.result(timeout) for f in futs]


def test_no_message_leaves_a_member_before_its_journal_is_synced(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3)
    durables: dict[str, DurableJournal] = {}
    violations: list[str] = []
    sent: dict[str, int] = {}
    for name in c.addrs:
        node = c.start(name)
        transport = node.syncobj._SyncObj__transport
        real_send = transport.send
        durable = DurableJournal(node.syncobj, os.path.join(node.settings.data_dir, "raft.dump"))

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
        ops = [
            ("c", "", "Pod", "default", f"p{round_}-{i}", b"x" * 200, {}, {}, 0) for i in range(200)
        ]
        assert all(r[0] == store.OK for r in submit_all(leader, ops))
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
        ops = [("c", "", "Pod", "default", f"q{i}-{j}", b"y", {}, {}, 0) for j in range(5)]
        acked += sum(r[0] == store.OK for r in submit_all(leader, ops))
    assert acked == 200
    assert all(n.durable is not None and n.durable.syncs > 0 for n in c.nodes.values())
    c.restart_all_and_expect("Pod", 200)
