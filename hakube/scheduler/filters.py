"""Filters: may this pod go on this node? Each returns the reasons it may not (empty: yes).

Reasons are the phrases Kubernetes prints, so the unschedulable message reads the same
("Insufficient cpu", "node(s) had untolerated taint {k: v}"). Filters are pure functions of an
``Attempt`` (the pod plus facts computed once per scheduling attempt) and a ``NodeInfo``; the
order matters only for which reason a node reports first (cheap, common checks come first and
a node stops at its first failing filter, except resources, which names every shortage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hakube.api.scheduling import find_toleration, ports_conflict, untolerated_taint
from hakube.api.v1 import pod_pb2
from hakube.scheduler.cache import NodeInfo
from hakube.scheduler.podinfo import PodInfo
from hakube.scheduler.topology import (
    AffinityFacts,
    SpreadFacts,
    passes_node_affinity,
)

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"

NOT_READY = "node(s) were not ready"
CORDONED = "node(s) were unschedulable"
NODE_NAME = "node(s) didn't match the requested node name"
NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"
POD_AFFINITY = "node(s) didn't match pod affinity rules"
POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
SPREAD = "node(s) didn't match pod topology spread constraints"
SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"


Reasons = tuple[str, ...]
Filter = Callable[["Attempt", NodeInfo], Reasons]


@dataclass
class Attempt:
    """One pod's scheduling attempt: the pod and facts shared by every node's check."""

    pi: PodInfo
    affinity: AffinityFacts | None = None
    spread: SpreadFacts | None = None
    tolerations: Sequence[pod_pb2.Toleration] = field(default_factory=tuple)
    filters: tuple[tuple[str, Filter], ...] = ()
    """The filters that apply to this pod (see ``applicable``); empty: all of them."""

    @property
    def pod(self) -> pod_pb2.Pod:
        return self.pi.pod


OK: Reasons = ()


def node_ready(a: Attempt, ni: NodeInfo) -> Reasons:
    if ni.ready or find_toleration(a.tolerations, NOT_READY_TAINT, "", "NoExecute"):
        return OK
    return (NOT_READY,)


def node_unschedulable(a: Attempt, ni: NodeInfo) -> Reasons:
    if ni.unschedulable and not find_toleration(
        a.tolerations, UNSCHEDULABLE_TAINT, "", "NoSchedule"
    ):
        return (CORDONED,)
    return OK


def node_name(a: Attempt, ni: NodeInfo) -> Reasons:
    want = a.pod.spec.node_name
    return (NODE_NAME,) if want and want != ni.name else OK


def node_affinity(a: Attempt, ni: NodeInfo) -> Reasons:
    return OK if passes_node_affinity(a.pod, ni) else (NODE_AFFINITY,)


def taints(a: Attempt, ni: NodeInfo) -> Reasons:
    bad = untolerated_taint(a.tolerations, ni.hard_taints)
    return OK if bad is None else (f"node(s) had untolerated taint {{{bad[0]}: {bad[1]}}}",)


def resources(a: Attempt, ni: NodeInfo) -> Reasons:
    want, used, cap = a.pi.requests, ni.requested, ni.allocatable
    if (
        used.pods < cap.pods
        and used.milli_cpu + want.milli_cpu <= cap.milli_cpu
        and used.memory + want.memory <= cap.memory
    ):
        return OK  # the common case, without building a list
    out = []
    if used.pods + 1 > cap.pods:
        out.append("Too many pods")
    if want.milli_cpu and used.milli_cpu + want.milli_cpu > cap.milli_cpu:
        out.append("Insufficient cpu")
    if want.memory and used.memory + want.memory > cap.memory:
        out.append("Insufficient memory")
    return tuple(out)


def host_ports(a: Attempt, ni: NodeInfo) -> Reasons:
    for p in a.pi.host_ports:
        if ports_conflict(p, ni.ports):
            return (PORTS,)
    return OK


def inter_pod_affinity(a: Attempt, ni: NodeInfo) -> Reasons:
    f = a.affinity
    if f is None:
        return OK
    labels = ni.labels
    for key, value in f.forbidden:
        if labels.get(key) == value:
            return (EXISTING_ANTI_AFFINITY,)
    aff = a.pod.spec.affinity.pod_affinity.required_during_scheduling_ignored_during_execution
    for i, t in enumerate(aff):
        if t.topology_key not in labels:
            return (POD_AFFINITY,)
        if f.affinity_any:
            if (t.topology_key, labels[t.topology_key]) not in f.affinity[i]:
                return (POD_AFFINITY,)
        elif not f.self_affine:
            return (POD_AFFINITY,)
    anti = a.pod.spec.affinity.pod_anti_affinity
    for i, t in enumerate(anti.required_during_scheduling_ignored_during_execution):
        if t.topology_key in labels and (t.topology_key, labels[t.topology_key]) in f.anti[i]:
            return (POD_ANTI_AFFINITY,)
    return OK


def topology_spread(a: Attempt, ni: NodeInfo) -> Reasons:
    f = a.spread
    if f is None:
        return OK
    for i, c in enumerate(f.constraints):
        if c.when_unsatisfiable not in ("", "DoNotSchedule"):
            continue
        value = ni.labels.get(c.topology_key)
        if value is None:
            return (SPREAD_LABEL,)
        skew = f.counts[i][value] + (1 if f.self_match[i] else 0) - f.minimum[i]
        if skew > max(c.max_skew, 1):
            return (SPREAD,)
    return OK


FILTERS: tuple[tuple[str, Filter], ...] = (
    ("NodeReady", node_ready),
    ("NodeUnschedulable", node_unschedulable),
    ("NodeName", node_name),
    ("NodeAffinity", node_affinity),
    ("TaintToleration", taints),
    ("NodeResourcesFit", resources),
    ("NodePorts", host_ports),
    ("InterPodAffinity", inter_pod_affinity),
    ("PodTopologySpread", topology_spread),
)

RESOLVABLE_BY_PREEMPTION = frozenset({"NodeResourcesFit", "NodePorts"})
"""Filters that removing pods from a node can make pass."""


def applicable(a: Attempt) -> tuple[tuple[str, Filter], ...]:
    """The filters that can reject anything for this pod (the rest would all say yes)."""
    spec = a.pod.spec
    skip = set()
    if not spec.node_name:
        skip.add("NodeName")
    if not spec.node_selector and not spec.affinity.node_affinity.HasField(
        "required_during_scheduling_ignored_during_execution"
    ):
        skip.add("NodeAffinity")
    if not a.pi.host_ports:
        skip.add("NodePorts")
    if a.affinity is None:
        skip.add("InterPodAffinity")
    if a.spread is None:
        skip.add("PodTopologySpread")
    return tuple(f for f in FILTERS if f[0] not in skip)


def check(a: Attempt, ni: NodeInfo) -> tuple[str, Reasons]:
    """("", ()) when the pod fits; else the failing filter's name and its reasons."""
    for name, fn in a.filters or FILTERS:
        if reasons := fn(a, ni):
            return name, reasons
    return "", OK
