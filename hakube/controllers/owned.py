"""Making and removing a workload's pods, and the conditions on its status.

Shared by the Job, DaemonSet and StatefulSet controllers (and CronJob, Endpoints, HPA for the
small helpers). The pod, owner and selector facts they rely on live in ``podutil``, shared
with the ReplicaSet and Deployment controllers; expectations live in ``expectations``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hakube.api import conditions as conditions_mod
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import pod_pb2
from hakube.client import errors
from hakube.controllers import podutil
from hakube.controllers.expectations import PodNameExpectations
from hakube.controllers.writes import Writes


def pod_from_template(
    template: pod_pb2.PodTemplateSpec, owner: Any, *, name: str = "", generate_name: str = ""
) -> pod_pb2.Pod:
    """A new pod from a workload's template, controlled by ``owner``."""
    pod = pod_pb2.Pod()
    pod.metadata.CopyFrom(template.metadata)
    for f in ("name", "generate_name", "resource_version", "uid", "namespace"):
        pod.metadata.ClearField(f)
    pod.metadata.namespace = owner.metadata.namespace
    del pod.metadata.owner_references[:]
    if name:
        pod.metadata.name = name
    else:
        pod.metadata.generate_name = generate_name or f"{owner.metadata.name}-"
    pod.metadata.owner_references.append(podutil.owner_reference(owner))
    pod.spec.CopyFrom(template.spec)
    return pod


def set_condition(conditions: Any, type_: str, status: str, reason: str, message: str) -> bool:
    """Set one Job or HPA condition (these also carry ``lastProbeTime``, stamped whenever the
    condition changes); True if anything changed."""
    return conditions_mod.set_condition(
        conditions, type_, status, reason, message, now=rfc3339(), stamps=("last_probe_time",)
    )


def owner_key(obj: Any, kind: str) -> tuple[str, str] | None:
    """The queue key of the ``kind`` object controlling ``obj``, or None."""
    for ref in obj.metadata.owner_references:
        if ref.controller and ref.kind == kind:
            return (obj.metadata.namespace, ref.name)
    return None


def owner_enqueuer(queue: Any, kind: str) -> Callable[[Any], None]:
    """A handler that queues the ``kind`` object controlling whatever object it is given."""

    def enqueue(obj: Any) -> None:
        key = owner_key(obj, kind)
        if key is not None:
            queue.add(key)

    return enqueue


def live_copy(informer: Any, key: tuple[str, str]) -> tuple[Any, Any] | None:
    """The cached object at ``key`` (namespace, name) and a private copy of it, or None when it
    is gone or being deleted. Syncs edit the copy (the cache is shared by every worker) and
    compare it with the cached one to see whether there is anything to write."""
    cached = informer.get(key[1], key[0])
    if cached is None or cached.metadata.deletion_timestamp:
        return None
    obj = type(cached)()
    obj.CopyFrom(cached)
    return cached, obj


def on_any_change(informer: Any, fn: Callable[[Any], None]) -> None:
    """Call ``fn(obj)`` when an object of ``informer`` is added, changed (new state) or deleted."""
    informer.add_handlers(on_add=fn, on_update=lambda old, new: fn(new), on_delete=fn)


def delete_exact(client: Any, obj: Any, *, propagation_policy: str = "") -> bool:
    """Delete ``obj`` itself: the uid is a precondition, so a same-named successor created
    meanwhile is never hit. False if it was already gone or replaced (the next pass sees the
    truth)."""
    meta = obj.metadata
    try:
        client.delete(
            type(obj),
            meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
            propagation_policy=propagation_policy,
        )
    except (errors.NotFound, errors.Conflict):
        return False
    return True


class PodControl:
    """Creates and deletes a workload's pods: records expectations and the usual events."""

    def __init__(self, writes: Writes, events: Any, expectations: PodNameExpectations) -> None:
        self.writes = writes
        self.events = events
        self.expectations = expectations

    def create(self, owner: Any, pod: pod_pb2.Pod) -> pod_pb2.Pod:
        """Create ``pod`` for ``owner``; a failure is recorded as FailedCreate and raised."""
        try:
            made = self.writes.create(pod)
        except errors.HakubeError as exc:
            self.events.warning(owner, "FailedCreate", f"Error creating: {exc}")
            raise
        self.expectations.expect(_key(owner), created=[made.metadata.name])
        self.events.normal(owner, "SuccessfulCreate", f"Created pod: {made.metadata.name}")
        return made

    def delete(self, owner: Any, pod: pod_pb2.Pod, *, force: bool = False) -> bool:
        """Delete ``pod`` (no grace when ``force``); False if it was already gone or replaced."""
        if pod.metadata.deletion_timestamp and not force:
            return False
        try:
            self.writes.delete(pod, uid=pod.metadata.uid, grace_period_seconds=0 if force else None)
        except (errors.NotFound, errors.Conflict):
            return False
        self.expectations.expect(_key(owner), deleted=[pod.metadata.name])
        self.events.normal(owner, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        return True


def _key(obj: Any) -> tuple[str, str]:
    return (obj.metadata.namespace, obj.metadata.name)
