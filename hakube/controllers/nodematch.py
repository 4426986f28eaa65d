"""Whether a pod may run on a node: nodeSelector, required node affinity, taints/tolerations.

The DaemonSet controller decides this itself (a daemon pod is bound to its node at creation),
with the same rules the scheduler applies: every nodeSelector label equal; at least one
required nodeSelectorTerm whose expressions all hold (In, NotIn, Exists, DoesNotExist, Gt, Lt
on labels; ``metadata.name`` in matchFields); every NoSchedule/NoExecute taint tolerated.
"""

from __future__ import annotations

from typing import Any

from hakube.api.v1 import core_pb2, pod_pb2


def _requirement_holds(req: pod_pb2.NodeSelectorRequirement, values: dict[str, str]) -> bool:
    has = req.key in values
    v = values.get(req.key, "")
    op = req.operator
    if op == "In":
        return has and v in req.values
    if op == "NotIn":
        return not has or v not in req.values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and len(req.values) == 1:
        try:
            a, b = int(v), int(req.values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term: pod_pb2.NodeSelectorTerm, node: core_pb2.Node) -> bool:
    if not term.match_expressions and not term.match_fields:
        return False  # an empty term matches nothing, as in Kubernetes
    labels = dict(node.metadata.labels)
    fields = {"metadata.name": node.metadata.name}
    return all(_requirement_holds(r, labels) for r in term.match_expressions) and all(
        _requirement_holds(r, fields) for r in term.match_fields
    )


def affinity_matches(spec: pod_pb2.PodSpec, node: core_pb2.Node) -> bool:
    """nodeSelector and required node affinity."""
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    na = spec.affinity.node_affinity
    if not na.HasField("required_during_scheduling_ignored_during_execution"):
        return True
    terms = na.required_during_scheduling_ignored_during_execution.node_selector_terms
    return any(term_matches(t, node) for t in terms)


def tolerates(tolerations: Any, taint: core_pb2.Taint) -> bool:
    for t in tolerations:
        if t.effect and t.effect != taint.effect:
            continue
        if t.operator == "Exists":
            if not t.key or t.key == taint.key:
                return True
        elif t.key == taint.key and t.value == taint.value:
            return True
    return False


def untolerated(spec: pod_pb2.PodSpec, node: core_pb2.Node) -> list[core_pb2.Taint]:
    """The node's NoSchedule/NoExecute taints the pod does not tolerate."""
    return [
        t
        for t in node.spec.taints
        if t.effect in ("NoSchedule", "NoExecute") and not tolerates(spec.tolerations, t)
    ]


def fits(spec: pod_pb2.PodSpec, node: core_pb2.Node) -> bool:
    return affinity_matches(spec, node) and not untolerated(spec, node)
