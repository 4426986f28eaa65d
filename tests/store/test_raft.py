"""Raft members and the group-commit proposer on real pysyncobj, in one process."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable

import pytest

from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.errors import OutcomeUnknown, Unavailable
from hakube.store.proposer import Proposer
from hakube.testing.raft import InProcessCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def submit_all(node: object, batch: list[store.Op], timeout: float = 20) -> list[store.Result]:
    futs = [node.proposer.submit(op) for op in batch]  # type: ignore[attr-defined]
    return [f.result(timeout) for f in futs]


def test_concurrent_writes_are_group_committed_into_few_raft_commands(
    raft_cluster: Callable[..., InProcessCluster], caplog: pytest.LogCaptureFixture
) -> None:
    c = raft_cluster(3)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    batches: list[int] = []
    leader.proposer._on_latency = lambda secs, n: batches.append(n)
    batch = [
        ops.wire(ops.Create("", "Pod", "default", f"p{i}", b"x" * 100, {}, {}, 0))
        for i in range(2000)
    ]
    results = submit_all(leader, batch)
    assert all(r[0] == store.OK for r in results)
    assert sorted(r[1] for r in results) == list(range(1, 2001))
    assert sum(batches) == 2000
    assert len(batches) < 200, f"{len(batches)} raft commands for 2000 writes"
    for node in c.nodes.values():  # every replica converges on the same state
        wait_for(lambda n=node: n.fsm.revision == 2000, 10, "replicas to apply")
    states = {pickle.dumps(n.fsm._serialize()) for n in c.nodes.values()}
    assert len(states) == 1, "replicas diverged"
    assert "truncating already-applied" not in caplog.text


def test_writes_through_a_follower_reach_every_replica(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    follower = next(n for n in c.nodes.values() if n is not leader)
    res = submit_all(
        follower, [ops.wire(ops.Create("", "Pod", "default", "via-follower", b"v", {}, {}, 0))]
    )
    assert res[0][0] == store.OK
    # The callback fires after the follower applied it: a local read sees it at once.
    assert follower.fsm.get("Pod", "default", "via-follower") is not None


def test_a_minority_member_fails_fast_with_unavailable(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3)
    for name in c.addrs:
        c.start(name)
    c.leader()
    names = list(c.nodes)
    c.stop(names[0])
    c.stop(names[1])
    survivor = c.nodes[names[2]]
    wait_for(lambda: not survivor.has_quorum(), 10, "the survivor to see it lost quorum")
    start = time.monotonic()
    fut = survivor.proposer.submit(ops.wire(ops.Barrier()))
    with pytest.raises(Unavailable):
        fut.result(5)
    assert time.monotonic() - start < 1


def test_a_proposal_that_never_commits_expires_as_outcome_unknown(tmp_path: object) -> None:
    # A member whose only peer never starts has no leader: the command waits in pysyncobj's
    # queue forever. The proposer's deadline must fail it and keep the pipeline usable.
    from hakube.local.cluster import free_ports
    from hakube.store.fsm import StoreFSM
    from hakube.store.raft import RaftNode, RaftSettings
    from hakube.testing.raft import member_tls

    a, b = free_ports(2)
    node = RaftNode(
        RaftSettings(
            name="solo",
            raft_address=f"127.0.0.1:{a}",
            peers={"ghost": f"127.0.0.1:{b}"},
            data_dir=str(tmp_path),
            tls=member_tls(f"{tmp_path}/pki", "solo"),
            batch_timeout=0.5,
        ),
        StoreFSM(),
    )
    try:
        node.proposer._can_propose = lambda: True
        futs = [node.proposer.submit(ops.wire(ops.Barrier())) for _ in range(3)]
        for f in futs:
            with pytest.raises(OutcomeUnknown):
                f.result(5)
        assert not node.proposer._inflight
    finally:
        node.stop()


def test_acknowledged_writes_survive_restart_of_every_member_after_compaction(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3, compaction_min_entries=50)
    for name in c.addrs:
        c.start(name)
    leader = c.leader()
    acked = 0
    for i in range(30):  # 30 sequential batches -> well past the compaction threshold
        batch = [
            ops.wire(ops.Create("", "Pod", "default", f"p{i}-{j}", b"x", {}, {}, 0))
            for j in range(10)
        ]
        acked += sum(r[0] == store.OK for r in submit_all(leader, batch))
    assert acked == 300
    for node in c.nodes.values():
        node.syncobj.forceLogCompaction()
    wait_for(
        lambda: all(n.status()["log_len"] < 100 for n in c.nodes.values()),
        30,
        "log compaction on every member",
    )
    c.restart_all_and_expect("Pod", 300)


def test_proposer_rejects_everything_when_it_cannot_propose() -> None:
    p = Proposer(lambda ops, callback: None, can_propose=lambda: False)
    with pytest.raises(Unavailable):
        p.submit(ops.wire(ops.Barrier())).result(1)
