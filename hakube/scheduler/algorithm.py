"""One scheduling decision: filter the nodes, score the feasible ones, pick the best.

Pure over a ``Cache`` (the caller holds its lock), so table-driven tests can give it a cluster
state and a pod and check the chosen node or the exact explanation.

Like Kubernetes, a big cluster is not searched exhaustively: the scan starts where the previous
one stopped and ends once enough feasible nodes are found (all nodes below 100; above, a share
falling from 50 % to 5 % as the cluster grows, never fewer than 100), which keeps a decision's
cost flat at scale while still spreading pods across the whole cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hakube.scheduler.cache import Cache, NodeInfo, owner_uid
from hakube.scheduler.filters import Attempt, Reasons, applicable, check
from hakube.scheduler.podinfo import PodInfo
from hakube.scheduler.scores import ZONE_LABEL, Spread, score
from hakube.scheduler.topology import affinity_facts, has_pod_affinity, spread_facts

MIN_FEASIBLE = 100


def feasible_target(total: int) -> int:
    """How many feasible nodes to find before scoring (Kubernetes' adaptive percentage)."""
    if total < MIN_FEASIBLE:
        return total
    pct = max(5, 50 - total // 125)
    return max(MIN_FEASIBLE, total * pct // 100)


@dataclass
class Decision:
    node: str | None
    failures: dict[str, tuple[str, Reasons]] = field(default_factory=dict)
    """Node -> (filter, reasons) for every node that was rejected."""
    evaluated: int = 0
    feasible: int = 0


def attempt_for(pi: PodInfo, cache: Cache) -> Attempt:
    """Facts shared by every node's check (the caller holds the cache lock)."""
    a = Attempt(pi, tolerations=tuple(pi.pod.spec.tolerations))
    if has_pod_affinity(pi.pod):
        a.affinity = affinity_facts(pi, cache.all_pods())
    elif cache.has_anti_affinity():
        a.affinity = affinity_facts(pi, cache.anti_affinity_pods())
    if pi.pod.spec.topology_spread_constraints:
        a.spread = spread_facts(pi, cache.nodes.values(), cache.all_pods())
    a.filters = applicable(a)
    return a


def owner_spread(pi: PodInfo, cache: Cache) -> Spread | None:
    owner = owner_uid(pi.pod)
    if not owner:
        return None
    by_node = dict(cache.owners.get(owner, {}))
    by_zone: dict[str, int] = {}
    for node, n in by_node.items():
        ni = cache.nodes.get(node)
        zone = ni.labels.get(ZONE_LABEL) if ni is not None else None
        if zone is not None:
            by_zone[zone] = by_zone.get(zone, 0) + n
    return Spread(owner, by_node, by_zone)


def decide(pi: PodInfo, cache: Cache, start: int = 0, *, exhaustive: bool = False) -> Decision:
    """Choose a node for ``pi`` (caller holds the cache lock). ``start`` rotates the scan."""
    nodes = list(cache.nodes.values())
    total = len(nodes)
    d = Decision(None)
    if not total:
        return d
    a = attempt_for(pi, cache)
    want = total if exhaustive else feasible_target(total)
    feasible: list[NodeInfo] = []
    for i in range(total):
        ni = nodes[(start + i) % total]
        d.evaluated += 1
        name, reasons = check(a, ni)
        if name:
            d.failures[ni.name] = (name, reasons)
        else:
            feasible.append(ni)
            if len(feasible) >= want:
                break
    d.feasible = len(feasible)
    if not feasible:
        return d
    if len(feasible) == 1:
        d.node = feasible[0].name
        return d
    totals = score(a, feasible, owner_spread(pi, cache))
    best = max(range(len(feasible)), key=lambda i: (totals[i], -i))
    d.node = feasible[best].name
    return d
