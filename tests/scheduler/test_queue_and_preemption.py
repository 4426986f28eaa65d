"""The pending queue's order and back-off, and preemption's choice of victims (pure)."""

from __future__ import annotations

from hakube.scheduler import preemption
from hakube.scheduler.algorithm import decide
from hakube.scheduler.podinfo import pod_info
from hakube.scheduler.queue import SchedulingQueue
from tests.scheduler.state import cluster, node, pod


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_higher_priority_first_then_older() -> None:
    clock = Clock()
    q = SchedulingQueue(lambda p: p.spec.priority, clock=clock)
    q.add(pod("old-low", priority=0))
    clock.t += 1
    q.add(pod("high", priority=10))
    clock.t += 1
    q.add(pod("new-low", priority=0))
    order = [q.pop(0).pod.metadata.name for _ in range(3)]  # type: ignore[union-attr]
    assert order == ["high", "old-low", "new-low"]


def test_unschedulable_pod_waits_for_a_change_then_its_backoff() -> None:
    clock = Clock()
    q = SchedulingQueue(lambda p: 0, initial_backoff=1.0, max_wait=30.0, clock=clock)
    q.add(pod("p"))
    qp = q.pop(0)
    assert qp is not None
    q.requeue(qp, unschedulable=True)
    assert q.pop(0) is None and q.depth()["unschedulable"] == 1
    q.move_all()  # a node changed, but the pod is still backing off
    assert q.pop(0) is None and q.depth()["backoff"] == 1
    clock.t += 1.01
    again = q.pop(0)
    assert again is not None and again.attempts == 2


def test_a_change_during_the_attempt_is_not_missed() -> None:
    clock = Clock()
    q = SchedulingQueue(lambda p: 0, clock=clock)
    q.add(pod("p"))
    qp = q.pop(0)
    q.move_all()  # e.g. a node joined while the pod was being decided on
    q.requeue(qp, unschedulable=True)  # type: ignore[arg-type]
    assert q.depth()["backoff"] == 1


def test_status_only_updates_do_not_wake_an_unschedulable_pod() -> None:
    clock = Clock()
    q = SchedulingQueue(lambda p: 0, clock=clock)
    p = pod("p")
    q.add(p)
    q.requeue(q.pop(0), unschedulable=True)  # type: ignore[arg-type]
    p2 = pod("p")
    p2.status.conditions.add(type="PodScheduled", status="False")
    q.update(p2)
    assert q.depth()["unschedulable"] == 1
    p3 = pod("p", labels={"changed": "yes"})
    q.update(p3)
    assert q.depth()["active"] == 1


def test_backoff_doubles_up_to_the_cap() -> None:
    clock = Clock()
    q = SchedulingQueue(lambda p: 0, initial_backoff=1.0, max_backoff=4.0, clock=clock)
    q.add(pod("p"))
    waits = []
    for _ in range(4):
        qp = q.pop(0)
        assert qp is not None
        q.requeue(qp, unschedulable=False)
        waits.append(qp.backoff_until - clock.t)
        clock.t = qp.backoff_until
    assert waits == [1.0, 2.0, 4.0, 4.0]


def test_preemption_evicts_the_fewest_least_important_pods() -> None:
    c = cluster(
        [node("a", cpu="2"), node("b", cpu="2")],
        [
            pod("a-low", cpu="1", priority=1, node_name="a"),
            pod("a-mid", cpu="1", priority=5, node_name="a"),
            pod("b-low1", cpu="1", priority=1, node_name="b"),
            pod("b-low2", cpu="1", priority=1, node_name="b"),
        ],
    )
    pi = pod_info(pod("vip", cpu="1", priority=100))
    with c.lock:
        d = decide(pi, c, exhaustive=True)
        assert d.node is None
        plan = preemption.plan(pi, c, d)
    assert plan is not None
    assert [v.pod.metadata.name for v in plan.victims] in (["b-low1"], ["b-low2"], ["a-low"])
    assert len(plan.victims) == 1


def test_no_preemption_of_equal_or_higher_priority() -> None:
    c = cluster([node("a", cpu="1")], [pod("x", cpu="1", priority=100, node_name="a")])
    pi = pod_info(pod("p", cpu="1", priority=100))
    with c.lock:
        d = decide(pi, c, exhaustive=True)
        assert preemption.plan(pi, c, d) is None


def test_preemption_does_not_help_against_taints() -> None:
    c = cluster(
        [node("a", cpu="1", taints=[{"key": "k", "effect": "NoSchedule"}])],
        [pod("x", cpu="1", priority=0, node_name="a")],
    )
    pi = pod_info(pod("p", cpu="1", priority=100))
    with c.lock:
        assert preemption.plan(pi, c, decide(pi, c, exhaustive=True)) is None


def test_nominated_pod_waits_for_its_victims() -> None:
    victim = pod("x", cpu="1", priority=0, node_name="a")
    victim.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    c = cluster([node("a", cpu="1")], [victim])
    p = pod("p", cpu="1", priority=100)
    p.status.nominated_node_name = "a"
    with c.lock:
        assert not preemption.eligible(pod_info(p), "PreemptLowerPriority", c)
        assert not preemption.eligible(pod_info(pod("q", priority=5)), "Never", c)
