"""Pre-vote: a member that cannot hear a healthy leader must not raise its term, so that it
rejoins without forcing an election; elections after a real leader loss still happen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from hakube.store import fsm as store
from hakube.store import ops
from hakube.store import raft as raft_mod
from hakube.store.raft import RaftNode
from hakube.testing.raft import Cut, InProcessCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def term(node: RaftNode) -> int:
    return int(node.syncobj.raftCurrentTerm)


def start3(raft_cluster: Callable[..., InProcessCluster], **settings: object) -> InProcessCluster:
    c = raft_cluster(3, **settings)
    for name in c.addrs:
        c.start(name)
    return c


def cut_follower_for_a_while(c: InProcessCluster) -> tuple[RaftNode, str, int]:
    """Cut a follower off for about four election timeouts; returns (leader, victim, term)."""
    leader = c.leader()
    before = term(leader)
    victim = next(n for n, node in c.nodes.items() if node is not leader)
    # A loaded machine may not have told the victim the leader's term yet; cut it only after.
    wait_for(lambda: term(c.nodes[victim]) == before, 10, f"{victim} to learn term {before}")
    cut = Cut(c, victim)
    node = c.nodes[victim]
    # The victim's election timer runs out again and again (0.4-1.4 s each).
    wait_for(lambda: (node.prevote.rounds_started if node.prevote else term(node) - before) >= 3,
             20, f"{victim} to try several elections")  # fmt: skip
    cut.heal()
    return leader, victim, before


def test_a_member_cut_off_from_a_healthy_leader_rejoins_without_an_election(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = start3(raft_cluster)
    leader, victim, before = cut_follower_for_a_while(c)
    node = c.nodes[victim]
    # On a loaded machine the others may hold an election of their own (a heartbeat late):
    # the claim is that the cut-off member never started one, so its term is never ahead.
    assert node.prevote is not None and node.prevote.elections_allowed == 0
    others = [n for n in c.nodes.values() if n is not node]
    assert term(node) <= max(term(n) for n in others), "the cut-off member raised its term"
    leader = c.leader()
    wait_for(lambda: node.leader_name() == leader.settings.name, 10, f"{victim} to follow again")
    res = leader.proposer.submit(
        ops.wire(ops.Create("", "Pod", "default", "after", b"v", {}, {}, 0))
    ).result(10)
    assert res[0] == store.OK
    wait_for(lambda: node.fsm.get("Pod", "default", "after") is not None, 10, "catch-up")
    assert len({term(n) for n in c.nodes.values()}) == 1


def test_without_pre_vote_the_returning_member_forces_an_election(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    """The control: what pysyncobj does alone (shows the test above can fail)."""
    c = start3(raft_cluster, pre_vote=False)
    leader, victim, before = cut_follower_for_a_while(c)
    assert term(c.nodes[victim]) > before
    wait_for(lambda: term(leader) > before, 10, "the leader to see the higher term")


def test_members_still_elect_a_leader_when_the_leader_dies(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = start3(raft_cluster)
    leader = c.leader()
    old = next(n for n, node in c.nodes.items() if node is leader)
    c.stop(old)
    new = c.leader(10)
    assert new is not leader
    assert new.prevote is not None and new.prevote.elections_allowed >= 1
    res = new.proposer.submit(
        ops.wire(ops.Create("", "Pod", "default", "x", b"v", {}, {}, 0))
    ).result(10)
    assert res[0] == store.OK


def _run_ahead(c: InProcessCluster) -> tuple[RaftNode, RaftNode, int]:
    """Give a follower a term three ahead of the leader's with no leader in it — as when it
    won a pre-vote and its vote requests were lost. Returns (leader, victim, its term)."""
    leader = c.leader()
    node = next(n for n in c.nodes.values() if n is not leader)
    ahead = term(leader) + 3
    done = threading.Event()

    def bump() -> None:
        node.syncobj._SyncObj__setCurrentTerm(ahead, None)  # type: ignore[attr-defined]
        done.set()

    node._on_raft_thread.append(bump)
    wait_for(done.is_set, 5, "the term to be raised")
    return leader, node, ahead


def _write(c: InProcessCluster, name: str) -> None:
    res = (
        c.leader(15)
        .proposer.submit(ops.wire(ops.Create("", "Pod", "default", name, b"v", {}, {}, 0)))
        .result(10)
    )
    assert res[0] == store.OK


def test_a_member_whose_term_ran_ahead_rejoins_at_once(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    """Seen in the fault runs (docs/reliability.md): such a member ignored the leader's entries,
    the leader never heard of the higher term, and pre-vote kept the member from forcing an
    election — out of the quorum until the leader happened to change, for minutes."""
    c = start3(raft_cluster)
    _, node, ahead = _run_ahead(c)
    wait_for(lambda: all(term(n) >= ahead for n in c.nodes.values()), 10, "the term to spread")
    _write(c, "after")
    wait_for(lambda: node.fsm.get("Pod", "default", "after") is not None, 10, "catch-up")


def test_without_the_answer_a_member_whose_term_ran_ahead_stays_out(
    raft_cluster: Callable[..., InProcessCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same without the answer to the stale leader (the test above can fail)."""
    monkeypatch.setattr(raft_mod, "_answer_stale_leader", lambda *a: None)
    c = start3(raft_cluster)
    leader, node, ahead = _run_ahead(c)
    _write(c, "after")
    time.sleep(3)  # absence over a span of several election timeouts: nothing to wait for
    assert node.fsm.get("Pod", "default", "after") is None
    assert term(node) == ahead and term(leader) < ahead
