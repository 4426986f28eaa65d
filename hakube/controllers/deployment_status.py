"""A Deployment's status and its Available / Progressing conditions, computed from its
ReplicaSets (pure: the controller writes what this returns).

Progressing follows Kubernetes: True while the rollout moves (more updated, ready or available
pods, fewer old ones), True with reason NewReplicaSetAvailable once complete, False with
ProgressDeadlineExceeded when nothing moved for ``progressDeadlineSeconds`` since the last
progress, and Unknown while paused. The deadline is measured from the condition's
``lastUpdateTime``, which only changes when something progressed.
"""

from __future__ import annotations

from hakube.api import conditions
from hakube.api.rollout import (
    AVAILABLE,
    COMPLETE,
    CREATED,
    PAUSED,
    PROGRESSING,
    RESUMED,
    TIMED_OUT,
)
from hakube.api.timestamps import parse_time, rfc3339
from hakube.api.v1 import workloads_pb2
from hakube.controllers.deployutil import Deployment, max_unavailable

RS = workloads_pb2.ReplicaSet


def set_condition(
    status: workloads_pb2.DeploymentStatus,
    type_: str,
    value: str,
    reason: str,
    message: str,
    now: float,
    *,
    touch: bool = False,
) -> None:
    """Set a condition by the common rule (``hakube.api.conditions``); ``lastUpdateTime`` moves
    when something changed, or with ``touch`` (progress was made)."""
    stamp = rfc3339(now)
    changed = conditions.set_condition(
        status.conditions, type_, value, reason, message, now=stamp, stamps=("last_update_time",)
    )
    cur = conditions.find(status.conditions, type_)
    if touch and not changed and cur is not None:
        cur.last_update_time = stamp


def complete(d: Deployment, st: workloads_pb2.DeploymentStatus) -> bool:
    n = d.spec.replicas
    return (
        st.updated_replicas == n
        and st.available_replicas == n
        and st.replicas == n
        and st.observed_generation >= d.metadata.generation
    )


def progressed(old: workloads_pb2.DeploymentStatus, new: workloads_pb2.DeploymentStatus) -> bool:
    return (
        new.updated_replicas > old.updated_replicas
        or new.replicas - new.updated_replicas < old.replicas - old.updated_replicas
        or new.ready_replicas > old.ready_replicas
        or new.available_replicas > old.available_replicas
    )


def timed_out(d: Deployment, st: workloads_pb2.DeploymentStatus, now: float) -> bool:
    cond = conditions.find(st.conditions, PROGRESSING)
    if cond is None or cond.reason in (COMPLETE, PAUSED):
        return False
    if cond.reason == TIMED_OUT:
        return True
    since = parse_time(cond.last_update_time)
    return since is not None and since + d.spec.progress_deadline_seconds < now


def timed_out_on(st: workloads_pb2.DeploymentStatus, rs_name: str) -> bool:
    """Whether the recorded timeout is about ``rs_name`` (not an earlier new ReplicaSet)."""
    cond = conditions.find(st.conditions, PROGRESSING)
    return cond is not None and cond.reason == TIMED_OUT and f'"{rs_name}"' in cond.message


def compute(
    d: Deployment, all_rss: list[RS], new_rs: RS | None, now: float, *, created: bool = False
) -> workloads_pb2.DeploymentStatus:
    """The status to write. ``created``: this sync created the new ReplicaSet."""
    st = workloads_pb2.DeploymentStatus()
    st.CopyFrom(d.status)
    st.observed_generation = d.metadata.generation
    st.replicas = sum(rs.status.replicas for rs in all_rss)
    st.updated_replicas = new_rs.status.replicas if new_rs is not None else 0
    st.ready_replicas = sum(rs.status.ready_replicas for rs in all_rss)
    st.available_replicas = sum(rs.status.available_replicas for rs in all_rss)
    st.unavailable_replicas = max(0, d.spec.replicas - st.available_replicas)
    if st.available_replicas >= d.spec.replicas - max_unavailable(d):
        set_condition(
            st,
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    else:
        set_condition(
            st,
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    name = new_rs.metadata.name if new_rs is not None else ""
    cond = conditions.find(st.conditions, PROGRESSING)
    if d.spec.paused:
        set_condition(st, PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    elif cond is not None and cond.reason == PAUSED:
        set_condition(st, PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now, touch=True)
    elif created:
        set_condition(
            st, PROGRESSING, "True", CREATED, f'Created new replica set "{name}"', now, touch=True
        )
    elif new_rs is not None and complete(d, st):
        set_condition(
            st,
            PROGRESSING,
            "True",
            COMPLETE,
            f'ReplicaSet "{name}" has successfully progressed.',
            now,
        )
    elif cond is None and new_rs is not None:
        set_condition(
            st, PROGRESSING, "True", "FoundNewReplicaSet", f'Found new replica set "{name}"', now
        )
    elif new_rs is not None and progressed(d.status, st):
        set_condition(
            st,
            PROGRESSING,
            "True",
            "ReplicaSetUpdated",
            f'ReplicaSet "{name}" is progressing.',
            now,
            touch=True,
        )
    elif new_rs is not None and timed_out(d, st, now):
        set_condition(
            st,
            PROGRESSING,
            "False",
            TIMED_OUT,
            f'ReplicaSet "{name}" has timed out progressing.',
            now,
        )
    return st


def seconds_to_deadline(d: Deployment, st: workloads_pb2.DeploymentStatus, now: float) -> float:
    """When to look again for a timeout; -1 when there is nothing to wait for."""
    cond = conditions.find(st.conditions, PROGRESSING)
    if d.spec.paused or cond is None or cond.reason in (COMPLETE, TIMED_OUT) or complete(d, st):
        return -1
    since = parse_time(cond.last_update_time)
    if since is None:
        return -1
    return max(0.0, since + d.spec.progress_deadline_seconds - now)
