"""Small shared pieces of the batch and per-node controllers: ownership, pod state, times.

Controllers find "their" pods through the controller ownerReference (uid), never by labels
alone, so a pod someone else made with the same labels is never counted or deleted. Times in
objects are RFC 3339 strings in UTC, as Kubernetes writes them.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from hakube.api.v1 import meta_pb2, pod_pb2
from hakube.client import errors
from hakube.client.client import resolve_kind
from hakube.controllers import podutil

rfc3339 = podutil.rfc3339
parse_rfc3339 = podutil.parse_time
TERMINAL = podutil.TERMINAL


def owner_reference(owner: Any) -> meta_pb2.OwnerReference:
    """A controller ownerReference to ``owner`` that blocks its foreground deletion."""
    kind = resolve_kind(type(owner))
    return podutil.owner_ref_to(owner, kind.name, kind.api_version)


def controller_uid(obj: Any) -> str:
    """The uid of the object's controlling owner, or ""."""
    ref = podutil.controller_ref(obj.metadata)
    return "" if ref is None else str(ref.uid)


def owned_by(objects: Iterable[Any], owner: Any) -> list[Any]:
    """Those of ``objects`` (same namespace) whose controller is ``owner``."""
    uid, ns = owner.metadata.uid, owner.metadata.namespace
    return [o for o in objects if o.metadata.namespace == ns and controller_uid(o) == uid]


def selects(selector: meta_pb2.LabelSelector, labels: Any) -> bool:
    """Whether a LabelSelector matches ``labels``; an empty or broken selector matches none."""
    return podutil.selector_matcher(selector)(dict(labels))


def pod_ready(pod: pod_pb2.Pod) -> bool:
    """Running with condition Ready=True (what Services and rollouts count)."""
    running = pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
    return running and podutil.is_ready(pod)


pod_active = podutil.is_active
"""Neither finished nor being deleted: it still counts towards a workload's pods."""


def pod_from_template(
    template: pod_pb2.PodTemplateSpec, owner: Any, *, name: str = "", generate_name: str = ""
) -> pod_pb2.Pod:
    """A new pod from a workload's template, controlled by ``owner``."""
    pod = pod_pb2.Pod()
    pod.metadata.CopyFrom(template.metadata)
    for f in ("name", "generate_name", "resource_version", "uid", "namespace"):
        pod.metadata.ClearField(f)
    pod.metadata.namespace = owner.metadata.namespace
    if name:
        pod.metadata.name = name
    else:
        pod.metadata.generate_name = generate_name or f"{owner.metadata.name}-"
    pod.metadata.owner_references.append(owner_reference(owner))
    pod.spec.CopyFrom(template.spec)
    return pod


def template_hash(template: Any, collision_count: int = 0) -> str:
    """A short stable hash of a pod template: the revision name suffix of a rollout."""
    h = hashlib.sha256(template.SerializeToString(deterministic=True))
    if collision_count:
        h.update(str(collision_count).encode())
    return h.hexdigest()[:10]


def set_condition(conditions: Any, type_: str, status: str, reason: str, message: str) -> bool:
    """Set one condition in a repeated Condition field; True if anything changed."""
    now = rfc3339()
    for c in conditions:
        if c.type == type_:
            if (c.status, c.reason, c.message) == (status, reason, message):
                return False
            if c.status != status:
                c.last_transition_time = now
            c.status, c.reason, c.message = status, reason, message
            c.last_probe_time = now
            return True
    conditions.add(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now,
        last_probe_time=now,
    )
    return True


def has_condition(conditions: Any, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in conditions)


class Expectations:
    """Pods a controller has just created or deleted but its cache may not show yet.

    Without this, a sync that runs before the informer delivers a fresh create would count too
    few pods and create more (Kubernetes' "controller expectations"). A key's expectations are
    met when every created name is in the cache and every deleted one is gone or terminating;
    they lapse after ``ttl`` seconds in case a watch event was lost (a relist fixes the cache).
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._pending: dict[Any, tuple[set[str], set[str], float]] = {}

    def expect(self, key: Any, *, created: Iterable[str] = (), deleted: Iterable[str] = ()) -> None:
        with self._lock:
            c, d, _ = self._pending.get(key, (set(), set(), 0.0))
            self._pending[key] = (c | set(created), d | set(deleted), time.monotonic() + self.ttl)

    def met(self, key: Any, pods: Iterable[Any]) -> bool:
        """Whether ``pods`` (the controller's pods in the cache) reflect its own writes."""
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                return True
            created, deleted, deadline = entry
            live = {p.metadata.name: p for p in pods}
            created = {n for n in created if n not in live}
            deleted = {n for n in deleted if n in live and not live[n].metadata.deletion_timestamp}
            if (not created and not deleted) or time.monotonic() > deadline:
                del self._pending[key]
                return True
            self._pending[key] = (created, deleted, deadline)
            return False

    def forget(self, key: Any) -> None:
        with self._lock:
            self._pending.pop(key, None)


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent ``google.protobuf.Value`` (``1``, ``"25%"``) scaled against ``total``."""
    which = value.WhichOneof("kind")
    if which == "number_value":
        return int(value.number_value)
    if which == "string_value" and value.string_value.endswith("%"):
        pct = int(value.string_value[:-1] or 0)
        exact = pct * total / 100
        return int(math.ceil(exact) if round_up else math.floor(exact))
    if which == "string_value" and value.string_value.isdigit():
        return int(value.string_value)
    return 0


def owner_key(obj: Any, kind: str) -> tuple[str, str] | None:
    """The queue key of the ``kind`` object controlling ``obj``, or None."""
    for ref in obj.metadata.owner_references:
        if ref.controller and ref.kind == kind:
            return (obj.metadata.namespace, ref.name)
    return None


def on_any_change(informer: Any, fn: Callable[[Any], None]) -> None:
    """Call ``fn(obj)`` when an object of ``informer`` is added, changed (new state) or deleted."""
    informer.add_handlers(on_add=fn, on_update=lambda old, new: fn(new), on_delete=fn)


class PodControl:
    """Creates and deletes a workload's pods: records expectations and the usual events."""

    def __init__(self, client: Any, events: Any, expectations: Expectations) -> None:
        self.client = client
        self.events = events
        self.expectations = expectations

    def create(self, owner: Any, pod: pod_pb2.Pod) -> pod_pb2.Pod:
        """Create ``pod`` for ``owner``; a failure is recorded as FailedCreate and raised."""
        try:
            made: pod_pb2.Pod = self.client.pods.create(pod)
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
            self.client.pods.delete(
                pod.metadata.name,
                namespace=pod.metadata.namespace,
                uid=pod.metadata.uid,
                grace_period_seconds=0 if force else None,
            )
        except (errors.NotFound, errors.Conflict):
            return False
        self.expectations.expect(_key(owner), deleted=[pod.metadata.name])
        self.events.normal(owner, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        return True


def _key(obj: Any) -> tuple[str, str]:
    return (obj.metadata.namespace, obj.metadata.name)
