"""Pod and selector facts the workload controllers agree on: active, ready, available, ranked.

Kept in one place so the ReplicaSet controller (which counts), the Deployment controller (which
reads those counts back from ReplicaSet status) and ``hakubectl rollout status`` all mean the same
thing by "available": Ready for at least ``minReadySeconds``, measured from the Ready
condition's ``lastTransitionTime``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hakube.api.labels import SelectorError, from_label_selector, matcher
from hakube.api.owners import controller_ref
from hakube.api.timestamps import parse_time
from hakube.api.v1 import meta_pb2, pod_pb2
from hakube.client.base import resolve_kind

TERMINAL = ("Succeeded", "Failed")


def selector_matcher(sel: meta_pb2.LabelSelector) -> Callable[[dict[str, str]], bool]:
    """A predicate on labels. An empty selector matches nothing (as for workload kinds, where
    the API requires one), and so does a malformed one: never adopt on a misparse."""
    if not (sel.match_labels or sel.match_expressions):
        return lambda labels: False
    try:
        m = matcher(from_label_selector(sel))
    except SelectorError:
        return lambda labels: False
    return m if m is not None else (lambda labels: True)


def is_active(pod: pod_pb2.Pod) -> bool:
    """Counts toward replicas: not finished and not being deleted."""
    return pod.status.phase not in TERMINAL and not pod.metadata.deletion_timestamp


def ready_condition(pod: pod_pb2.Pod) -> Any | None:
    for c in pod.status.conditions:
        if c.type == "Ready":
            return c
    return None


def is_ready(pod: pod_pb2.Pod) -> bool:
    c = ready_condition(pod)
    return c is not None and c.status == "True"


def ready_since(pod: pod_pb2.Pod) -> float | None:
    """When the pod became Ready (None when not ready, or the time is unknown)."""
    c = ready_condition(pod)
    if c is None or c.status != "True":
        return None
    return parse_time(c.last_transition_time)


def is_available(pod: pod_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds``."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def owner_ref_to(obj: Any, kind: str, api_version: str) -> meta_pb2.OwnerReference:
    """The controller reference a controller puts on what it creates or adopts."""
    return meta_pb2.OwnerReference(
        api_version=api_version,
        kind=kind,
        name=obj.metadata.name,
        uid=obj.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def owner_reference(owner: Any) -> meta_pb2.OwnerReference:
    """A controller ownerReference to ``owner`` that blocks its foreground deletion."""
    kind = resolve_kind(type(owner))
    return owner_ref_to(owner, kind.name, kind.api_version)


def controller_uid(obj: Any) -> str:
    """The uid of the object's controlling owner, or ""."""
    ref = controller_ref(obj.metadata)
    return "" if ref is None else str(ref.uid)


def owned_by(objects: Iterable[Any], owner: Any) -> list[Any]:
    """Those of ``objects`` (same namespace) whose controller is ``owner``."""
    uid, ns = owner.metadata.uid, owner.metadata.namespace
    return [o for o in objects if o.metadata.namespace == ns and controller_uid(o) == uid]


def selects(selector: meta_pb2.LabelSelector, labels: Any) -> bool:
    """Whether a LabelSelector matches ``labels``; an empty or broken selector matches none."""
    return selector_matcher(selector)(dict(labels))


def pod_ready(pod: pod_pb2.Pod) -> bool:
    """Running with condition Ready=True (what Services and rollouts count)."""
    running = pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
    return running and is_ready(pod)


def _restarts(pod: pod_pb2.Pod) -> int:
    return max((c.restart_count for c in pod.status.container_statuses), default=0)


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: pod_pb2.Pod) -> tuple[Any, ...]:
    """Sort key: the pods to delete first come first (Kubernetes' ActivePods order).

    Unscheduled before scheduled, Pending before Unknown before Running, not ready before ready,
    ready for less time before ready for longer, more restarts before fewer, newer before older.
    """
    since = ready_since(pod) or 0.0
    created = parse_time(pod.metadata.creation_timestamp) or 0.0
    return (
        1 if pod.spec.node_name else 0,
        _PHASE_RANK.get(pod.status.phase, 0),
        1 if is_ready(pod) else 0,
        -since,
        -_restarts(pod),
        -created,
        pod.metadata.name,
    )


def failed_at(pod: pod_pb2.Pod) -> float:
    """When the pod (or, for OnFailure, its last container run) last failed."""
    times = [
        parse_time(s.state.terminated.finished_at or s.last_state.terminated.finished_at)
        for s in pod.status.container_statuses
    ]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    return parse_time(pod.metadata.creation_timestamp) or 0.0
