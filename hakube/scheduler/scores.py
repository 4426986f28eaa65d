"""Scores: among the nodes that passed the filters, which is best? Higher wins.

Each scorer gives every feasible node a raw value, normalises it to 0..100 across those nodes,
and contributes ``weight x score``; the node with the highest sum wins (ties go to the node seen
first in the rotating scan, which spreads equal nodes). The weights are Kubernetes' defaults and
documented in docs/scheduler.md:

=====================  ======  ==========================================================
scorer                 weight  prefers
=====================  ======  ==========================================================
LeastAllocated         1       the node with the most CPU and memory left after the pod
BalancedAllocation     1       nodes whose CPU and memory use stay in proportion
NodeAffinity           2       nodes matching more preferred node-affinity weight
TaintToleration        3       nodes with fewer untolerated PreferNoSchedule taints
InterPodAffinity       2       domains with more preferred-affinity (fewer anti) pods
PodTopologySpread      2       domains with fewer matching pods (ScheduleAnyway rules)
SelectorSpread         1       nodes and zones with fewer pods of the same owner
=====================  ======  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hakube.scheduler.cache import NodeInfo
from hakube.scheduler.filters import Attempt
from hakube.scheduler.podinfo import find_toleration, node_term_matches

ZONE_LABEL = "topology.kubernetes.io/zone"
MAX = 100.0


def least_allocated(a: Attempt, ni: NodeInfo) -> float:
    want, used, cap = a.pi.score_requests, ni.score_requested, ni.allocatable
    parts = []
    for w, u, c in (
        (want.milli_cpu, used.milli_cpu, cap.milli_cpu),
        (want.memory, used.memory, cap.memory),
    ):
        parts.append(0.0 if c <= 0 else max(0.0, (c - u - w) / c) * MAX)
    return sum(parts) / len(parts)


def balanced_allocation(a: Attempt, ni: NodeInfo) -> float:
    want, used, cap = a.pi.score_requests, ni.score_requested, ni.allocatable
    if cap.milli_cpu <= 0 or cap.memory <= 0:
        return 0.0
    cpu = min(1.0, (used.milli_cpu + want.milli_cpu) / cap.milli_cpu)
    mem = min(1.0, (used.memory + want.memory) / cap.memory)
    return (1.0 - abs(cpu - mem) / 2) * MAX


def node_affinity(a: Attempt, ni: NodeInfo) -> float:
    terms = a.pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return float(
        sum(t.weight for t in terms if node_term_matches(t.preference, ni.labels, ni.name))
    )


def prefer_no_schedule(a: Attempt, ni: NodeInfo) -> float:
    return float(
        sum(
            1
            for t in ni.node.spec.taints
            if t.effect == "PreferNoSchedule"
            and not find_toleration(a.tolerations, t.key, t.value, t.effect)
        )
    )


def inter_pod_affinity(a: Attempt, ni: NodeInfo) -> float:
    f = a.affinity
    if f is None or not f.preferred:
        return 0.0
    return float(sum(w for (key, value), w in f.preferred.items() if ni.labels.get(key) == value))


def topology_spread(a: Attempt, ni: NodeInfo) -> float:
    f = a.spread
    if f is None:
        return 0.0
    total = 0.0
    for i, c in enumerate(f.constraints):
        if c.when_unsatisfiable == "ScheduleAnyway":
            value = ni.labels.get(c.topology_key)
            total += (
                f.counts[i][value]
                if value is not None
                else max(f.counts[i].values(), default=0) + 1
            )
    return total


@dataclass
class Spread:
    """Same-owner pod counts for SelectorSpread: per node and per zone."""

    owner: str
    by_node: dict[str, int]
    by_zone: dict[str, int]


def selector_spread_raw(spread: Spread | None, ni: NodeInfo) -> float:
    if spread is None:
        return 0.0
    node = spread.by_node.get(ni.name, 0)
    zone = ni.labels.get(ZONE_LABEL)
    if zone is None or not spread.by_zone:
        return float(node)
    return node / 3 + 2 * spread.by_zone.get(zone, 0) / 3


def _scale_max(raw: Sequence[float]) -> list[float]:
    top = max(raw, default=0.0)
    return [r * MAX / top if top > 0 else 0.0 for r in raw]


def _invert_max(raw: Sequence[float]) -> list[float]:
    top = max(raw, default=0.0)
    return [MAX - r * MAX / top if top > 0 else MAX for r in raw]


def _min_max(raw: Sequence[float]) -> list[float]:
    lo, hi = min(raw, default=0.0), max(raw, default=0.0)
    return [(r - lo) * MAX / (hi - lo) if hi > lo else 0.0 for r in raw]


def _as_is(raw: Sequence[float]) -> list[float]:
    return list(raw)


Normalize = Callable[[Sequence[float]], list[float]]


@dataclass(frozen=True)
class Scorer:
    name: str
    weight: int
    raw: Callable[[Attempt, NodeInfo], float]
    normalize: Normalize
    applies: Callable[[Attempt], bool] = lambda a: True


def _has_preferred_node_affinity(a: Attempt) -> bool:
    na = a.pod.spec.affinity.node_affinity
    return bool(na.preferred_during_scheduling_ignored_during_execution)


SCORERS: tuple[Scorer, ...] = (
    Scorer("LeastAllocated", 1, least_allocated, _as_is),
    Scorer("BalancedAllocation", 1, balanced_allocation, _as_is),
    Scorer("NodeAffinity", 2, node_affinity, _scale_max, _has_preferred_node_affinity),
    Scorer("TaintToleration", 3, prefer_no_schedule, _invert_max),
    Scorer(
        "InterPodAffinity",
        2,
        inter_pod_affinity,
        _min_max,
        lambda a: a.affinity is not None and bool(a.affinity.preferred),
    ),
    Scorer("PodTopologySpread", 2, topology_spread, _invert_max, lambda a: a.spread is not None),
)

SELECTOR_SPREAD_WEIGHT = 1


def score(a: Attempt, nodes: Sequence[NodeInfo], spread: Spread | None = None) -> list[float]:
    """Weighted total per node (same order as ``nodes``)."""
    totals = [0.0] * len(nodes)
    for s in SCORERS:
        if not s.applies(a):
            continue
        values = s.normalize([s.raw(a, ni) for ni in nodes])
        for i, v in enumerate(values):
            totals[i] += s.weight * v
    if spread is not None:
        values = _invert_max([selector_spread_raw(spread, ni) for ni in nodes])
        for i, v in enumerate(values):
            totals[i] += SELECTOR_SPREAD_WEIGHT * v
    return totals
