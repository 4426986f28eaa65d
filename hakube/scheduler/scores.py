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

from hakube.api.scheduling import find_toleration, node_term_matches
from hakube.scheduler.cache import NodeInfo
from hakube.scheduler.filters import Attempt

ZONE_LABEL = "topology.kubernetes.io/zone"
MAX = 100.0


LEAST_ALLOCATED_WEIGHT = 1
BALANCED_ALLOCATION_WEIGHT = 1


def resource_scores(a: Attempt, nodes: Sequence[NodeInfo]) -> list[float]:
    """LeastAllocated and BalancedAllocation, weighted, in one pass (they run for every pod
    on every feasible node, so they are written for speed).

    LeastAllocated: the mean over CPU and memory of the share left free after the pod, x 100.
    BalancedAllocation: 100 x (1 - |cpu share - memory share| / 2), shares after the pod."""
    want = a.pi.score_requests
    wc, wm = want.milli_cpu, want.memory
    out = []
    for ni in nodes:
        cap, used = ni.allocatable, ni.score_requested
        cc, cm = cap.milli_cpu, cap.memory
        if cc <= 0 or cm <= 0:
            out.append(0.0)
            continue
        fc = (used.milli_cpu + wc) / cc
        fm = (used.memory + wm) / cm
        fc = 1.0 if fc > 1.0 else fc
        fm = 1.0 if fm > 1.0 else fm
        least = (2.0 - fc - fm) * 50.0
        balanced = (1.0 - abs(fc - fm) / 2) * MAX
        out.append(LEAST_ALLOCATED_WEIGHT * least + BALANCED_ALLOCATION_WEIGHT * balanced)
    return out


def node_affinity(a: Attempt, ni: NodeInfo) -> float:
    terms = a.pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return float(
        sum(t.weight for t in terms if node_term_matches(t.preference, ni.labels, ni.name))
    )


def prefer_no_schedule(a: Attempt, ni: NodeInfo) -> float:
    return float(
        sum(1 for k, v, e in ni.soft_taints if not find_toleration(a.tolerations, k, v, e))
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


Normalize = Callable[[Sequence[float]], list[float]]


@dataclass(frozen=True)
class Scorer:
    name: str
    weight: int
    raw: Callable[[Attempt, NodeInfo], float]
    normalize: Normalize
    applies: Callable[[Attempt, Sequence[NodeInfo]], bool] = lambda a, nodes: True


def _has_preferred_node_affinity(a: Attempt, nodes: Sequence[NodeInfo]) -> bool:
    na = a.pod.spec.affinity.node_affinity
    return bool(na.preferred_during_scheduling_ignored_during_execution)


def _soft_taints(a: Attempt, nodes: Sequence[NodeInfo]) -> bool:
    return any(ni.soft_taints for ni in nodes)


def _preferred_pod_affinity(a: Attempt, nodes: Sequence[NodeInfo]) -> bool:
    return a.affinity is not None and bool(a.affinity.preferred)


def _spread(a: Attempt, nodes: Sequence[NodeInfo]) -> bool:
    return a.spread is not None


SCORERS: tuple[Scorer, ...] = (
    Scorer("NodeAffinity", 2, node_affinity, _scale_max, _has_preferred_node_affinity),
    Scorer("TaintToleration", 3, prefer_no_schedule, _invert_max, _soft_taints),
    Scorer("InterPodAffinity", 2, inter_pod_affinity, _min_max, _preferred_pod_affinity),
    Scorer("PodTopologySpread", 2, topology_spread, _invert_max, _spread),
)
"""Skipping a scorer that gives every node the same score changes no decision."""

SELECTOR_SPREAD_WEIGHT = 1


def score(a: Attempt, nodes: Sequence[NodeInfo], spread: Spread | None = None) -> list[float]:
    """Weighted total per node (same order as ``nodes``)."""
    totals = resource_scores(a, nodes)
    for s in SCORERS:
        if not s.applies(a, nodes):
            continue
        values = s.normalize([s.raw(a, ni) for ni in nodes])
        for i, v in enumerate(values):
            totals[i] += s.weight * v
    if spread is not None:
        values = _invert_max([selector_spread_raw(spread, ni) for ni in nodes])
        for i, v in enumerate(values):
            totals[i] += SELECTOR_SPREAD_WEIGHT * v
    return totals
