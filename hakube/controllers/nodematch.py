"""Whether a daemon pod may run on a node: nodeSelector, required node affinity, taints.

The DaemonSet controller decides this itself (a daemon pod is bound to its node at creation),
so it calls the scheduler's own predicates (``hakube.scheduler.podinfo``) rather than a copy
of them: the two can never disagree about where a pod may run. Only the node-level rules
apply here; resources, ports and pod (anti-)affinity are the scheduler's business alone, as in
Kubernetes.
"""

from __future__ import annotations

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.scheduler.podinfo import node_affinity_matches, untolerated_taint


def fits(spec: pod_pb2.PodSpec, node: core_pb2.Node) -> bool:
    """Node affinity/selector match and every NoSchedule/NoExecute taint is tolerated."""
    meta = node.metadata
    if not node_affinity_matches(spec, dict(meta.labels), meta.name):
        return False
    taints = ((t.key, t.value, t.effect) for t in node.spec.taints)
    return untolerated_taint(spec.tolerations, taints) is None
