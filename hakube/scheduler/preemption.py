"""Preemption: make room for a pending pod by evicting fewer-important pods from one node.

Only nodes that failed on something removing pods can fix (resources, host ports) are
candidates. On each, every pod of lower priority is taken off in a what-if copy; if the pod
then fits, victims are given back one by one, most important first, as long as it still fits
(Kubernetes' "reprieve"), so only the minimum is evicted. Among candidate nodes the one whose
most important victim is least important wins, then the smallest sum of victim priorities, then
the fewest victims.

A pod that already nominated a node where its victims are still terminating does not preempt
again: it waits for them to go (their deletion moves it back to the active queue).
"""

from __future__ import annotations

from dataclasses import dataclass

from hakube.scheduler.algorithm import Decision, attempt_for
from hakube.scheduler.cache import Cache, NodeInfo
from hakube.scheduler.filters import RESOLVABLE_BY_PREEMPTION, Attempt, check
from hakube.scheduler.podinfo import PodInfo


@dataclass
class Plan:
    node: str
    victims: list[PodInfo]


def eligible(pi: PodInfo, policy: str, cache: Cache) -> bool:
    """May this pod preempt now? (Not with policy Never, nor while earlier victims go.)"""
    if policy == "Never":
        return False
    nominated = pi.pod.status.nominated_node_name
    ni = cache.nodes.get(nominated) if nominated else None
    if ni is not None:
        for other in ni.pods.values():
            if other.pod.metadata.deletion_timestamp and other.priority < pi.priority:
                return False
    return True


def _victims_on(a: Attempt, ni: NodeInfo) -> list[PodInfo] | None:
    pi = a.pi
    lower = [
        o
        for o in ni.pods.values()
        if o.priority < pi.priority and not o.pod.metadata.deletion_timestamp
    ]
    if not lower:
        return None
    trial = ni.clone()
    for o in lower:
        trial.remove(o.key)
    if check(a, trial)[0]:
        return None
    victims = []
    lower.sort(key=lambda o: (-o.priority, o.pod.metadata.creation_timestamp))
    for o in lower:
        trial.add(o)
        if check(a, trial)[0]:
            trial.remove(o.key)
            victims.append(o)
    return victims


def plan(pi: PodInfo, cache: Cache, decision: Decision) -> Plan | None:
    """The cheapest preemption that lets ``pi`` fit (caller holds the cache lock)."""
    a = attempt_for(pi, cache)
    best: tuple[tuple[int, int, int], Plan] | None = None
    for node, (filt, _reasons) in decision.failures.items():
        if filt not in RESOLVABLE_BY_PREEMPTION:
            continue
        ni = cache.nodes.get(node)
        if ni is None:
            continue
        victims = _victims_on(a, ni)
        if not victims:
            continue
        rank = (
            max(v.priority for v in victims),
            sum(v.priority for v in victims),
            len(victims),
        )
        if best is None or rank < best[0]:
            best = (rank, Plan(node, victims))
    return best[1] if best else None
