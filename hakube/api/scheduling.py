"""Node-level scheduling predicates: may a pod run on a node, by the node's labels, name,
taints and host ports alone.

The scheduler's filters and the DaemonSet controller (which binds daemon pods itself) both
call these, so the two can never disagree about where a pod may run -- the role Kubernetes
gives ``component-helpers/scheduling``. Resources and pod (anti-)affinity need the scheduler's
cache of what already runs on each node, so they stay in ``hakube.scheduler``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hakube.api.v1 import core_pb2, pod_pb2

Taint = tuple[str, str, str]
"""(key, value, effect)"""
HARD_EFFECTS = ("NoSchedule", "NoExecute")
"""Taint effects a pod must tolerate to be placed on the node."""


def ports_conflict(want: tuple[str, str, int], used: Iterable[tuple[str, str, int]]) -> bool:
    """Same protocol and port, and the host IPs overlap (0.0.0.0 overlaps everything)."""
    proto, ip, port = want
    for uproto, uip, uport in used:
        if uport == port and uproto == proto and (ip == uip or "0.0.0.0" in (ip, uip)):
            return True
    return False


def node_requirement_matches(req: pod_pb2.NodeSelectorRequirement, value: str | None) -> bool:
    """One node-selector requirement against a node label (None: the label is absent)."""
    op = req.operator
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(req.values) != 1:
            return False
        try:
            have, bound = int(value), int(req.values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def node_term_matches(term: pod_pb2.NodeSelectorTerm, labels: Mapping[str, str], name: str) -> bool:
    """A node-selector term (all its expressions and fields hold); an empty term matches
    nothing, as in Kubernetes."""
    if not term.match_expressions and not term.match_fields:
        return False
    for r in term.match_expressions:
        if not node_requirement_matches(r, labels.get(r.key)):
            return False
    for r in term.match_fields:
        if r.key != "metadata.name" or not node_requirement_matches(r, name):
            return False
    return True


def node_affinity_matches(spec: pod_pb2.PodSpec, labels: Mapping[str, str], name: str) -> bool:
    """nodeSelector and required node affinity against a node's labels and name.

    The scheduler's NodeAffinity filter and the DaemonSet controller (which places daemon
    pods itself) both call this, so they can never disagree about where a pod may run.
    """
    for k, v in spec.node_selector.items():
        if labels.get(k) != v:
            return False
    na = spec.affinity.node_affinity
    if na.HasField("required_during_scheduling_ignored_during_execution"):
        terms = na.required_during_scheduling_ignored_during_execution.node_selector_terms
        return any(node_term_matches(t, labels, name) for t in terms)
    return True


def tolerates(tol: pod_pb2.Toleration, key: str, value: str, effect: str) -> bool:
    """Whether one toleration covers a taint (Kubernetes' ToleratesTaint)."""
    if tol.effect and tol.effect != effect:
        return False
    if tol.key and tol.key != key:
        return False
    if tol.operator == "Exists":
        return True
    if tol.operator in ("", "Equal"):
        return bool(tol.key or not key) and tol.value == value
    return False


def find_toleration(
    tolerations: Iterable[pod_pb2.Toleration], key: str, value: str, effect: str
) -> pod_pb2.Toleration | None:
    for t in tolerations:
        if tolerates(t, key, value, effect):
            return t
    return None


def untolerated_taint(
    tolerations: Iterable[pod_pb2.Toleration], taints: Iterable[Taint]
) -> Taint | None:
    """The first NoSchedule/NoExecute taint that no toleration covers, or None.

    The scheduler's TaintToleration filter and the DaemonSet controller both call this.
    """
    for key, value, effect in taints:
        if effect in HARD_EFFECTS and not find_toleration(tolerations, key, value, effect):
            return (key, value, effect)
    return None


def fits_node(spec: pod_pb2.PodSpec, node: core_pb2.Node) -> bool:
    """Node affinity/selector match and every NoSchedule/NoExecute taint is tolerated."""
    meta = node.metadata
    if not node_affinity_matches(spec, dict(meta.labels), meta.name):
        return False
    taints = ((t.key, t.value, t.effect) for t in node.spec.taints)
    return untolerated_taint(spec.tolerations, taints) is None
