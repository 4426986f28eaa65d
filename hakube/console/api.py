"""What the console's browser side asks for, answered from the hakube client: JSON for lists
and actions, Server-Sent Events for watches and followed logs."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from hakube.api import convert, failures, rollout
from hakube.api.agent.v1 import agent_pb2
from hakube.api.kinds import Kind, lookup
from hakube.api.timestamps import rfc3339
from hakube.client import Client, errors
from hakube.client.cluster import cluster_report
from hakube.client.edit import modify
from hakube.client.nodeproxy import through_masters
from hakube.client.transport import Stubs
from hakube.console import alerts as alerts_mod

WATCHABLE = (
    "nodes", "pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs",
    "cronjobs", "services", "endpoints", "events", "namespaces",
)  # fmt: skip
HEARTBEAT = 10.0
"""Seconds between comment lines on an idle event stream (a closed browser is noticed)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def http_status(exc: errors.HakubeError) -> int:
    """The HTTP status the API's own REST door gives the same failure."""
    return failures.of_code(exc.code).http if exc.code is not None else 500


def kind_of(plural: str) -> Kind:
    """The kind a page may watch or list; 404 for any other."""
    kind = lookup(plural) if plural in WATCHABLE else None
    if kind is None:
        raise ApiError(404, f'the console does not show "{plural}"')
    return kind


def listing(client: Client, plural: str, namespace: str | None) -> dict[str, Any]:
    kind = kind_of(plural)
    lst = client.list(kind, namespace=namespace if kind.namespaced else None)
    return {
        "resourceVersion": lst.resource_version,
        "items": [convert.to_dict(o) for o in lst.items],
    }


def watch_events(
    client: Client,
    plurals: list[str],
    namespace: str | None,
    stop: threading.Event,
    alerts: alerts_mod.AlertSource | None = None,
) -> Iterator[dict[str, Any] | None]:
    """For each kind a snapshot event, then every change of any of them, each tagged with its
    kind (one stream for a whole page: a browser opens only six connections to one host);
    None now and then while nothing happens (the caller writes a heartbeat). Ends when
    ``stop`` is set or a watch fails for good. The pseudo-kind ``alerts`` adds Prometheus'
    alerts from ``alerts`` (or says none is configured)."""
    events: queue.Queue[Any] = queue.Queue(maxsize=10_000)
    want_alerts = alerts_mod.KIND in plurals
    plurals = [p for p in plurals if p != alerts_mod.KIND]
    kinds = [kind_of(p) for p in plurals]
    watches: list[Any] = []
    try:
        if want_alerts and alerts is None:
            yield alerts_mod.NOT_CONFIGURED
        elif want_alerts and alerts is not None:
            alerts.subscribe(events)
        for plural, kind in zip(plurals, kinds, strict=True):
            ns = namespace if kind.namespaced else None
            try:
                lst = client.list(kind, namespace=ns)
            except errors.Forbidden as exc:  # the user may not see this kind; the others go on
                yield {"kind": plural, "type": "FORBIDDEN", "message": exc.message}
                continue
            yield {
                "kind": plural,
                "type": "SNAPSHOT",
                "items": [convert.to_dict(o) for o in lst.items],
            }
            w = client.watch(kind, namespace=ns, resource_version=lst.resource_version)
            watches.append(w)
            threading.Thread(
                target=_pump, args=(plural, w, events), name=f"console-watch-{plural}", daemon=True
            ).start()
        while not stop.is_set():
            try:
                plural, ev = events.get(timeout=HEARTBEAT)
            except queue.Empty:
                yield None
                continue
            if plural == alerts_mod.KIND:
                yield ev
                continue
            if isinstance(ev, errors.HakubeError):
                yield {"kind": plural, "type": "ERROR", "message": ev.message}
                return
            if ev.type == "BOOKMARK":
                continue
            yield {"kind": plural, "type": ev.type, "object": convert.to_dict(ev.object)}
    finally:
        if alerts is not None:
            alerts.unsubscribe(events)
        for w in watches:
            w.stop()


def _pump(plural: str, w: Any, events: queue.Queue[Any]) -> None:
    try:
        for ev in w:
            events.put((plural, ev))
    except errors.HakubeError as exc:
        events.put((plural, exc))


def log_lines(
    client: Client, namespace: str, pod: str, container: str, follow: bool
) -> Iterator[str]:
    """The container's log as it grows (``follow``), chunk by chunk."""
    req = agent_pb2.LogsRequest(
        namespace=namespace, pod=pod, container=container, follow=follow, tail_lines=1000
    )
    out: queue.Queue[Any] = queue.Queue(maxsize=1000)
    calls: list[Any] = []

    def stream(stubs: Stubs) -> None:
        call = stubs.node_proxy.Logs(req, timeout=None if follow else 60)
        calls.append(call)
        for chunk in call:
            out.put(chunk.data.decode("utf-8", "replace"))

    def run() -> None:
        try:
            through_masters(client, stream, f"logs of pod {pod}")
        except errors.HakubeError as exc:
            out.put(exc)
        except Exception as exc:  # the call was cancelled because the browser left
            out.put(errors.ServerError(str(exc)))
        out.put(StopIteration())

    threading.Thread(target=run, name=f"console-logs-{pod}", daemon=True).start()
    try:
        while True:
            try:
                item = out.get(timeout=HEARTBEAT)
            except queue.Empty:
                yield ""
                continue
            if isinstance(item, StopIteration):
                return
            if isinstance(item, errors.HakubeError):
                raise item
            yield item
    finally:
        for call in calls:
            call.cancel()


# -- actions ----------------------------------------------------------------------------------


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ApiError(400, f'request field "{name}" must be a {kind.__name__}')
    return value


def scale(client: Client, body: dict[str, Any]) -> str:
    ns, name = _field(body, "namespace", str), _field(body, "name", str)
    replicas = _field(body, "replicas", int)
    if replicas < 0:
        raise ApiError(422, 'request field "replicas" must not be negative')

    def change(d: Any) -> bool:
        if d.spec.replicas == replicas:
            return False
        d.spec.replicas = replicas
        return True

    modify(client, "Deployment", name, change, namespace=ns)
    return f"deployment {ns}/{name} scaled to {replicas}"


def restart(client: Client, body: dict[str, Any]) -> str:
    ns, name = _field(body, "namespace", str), _field(body, "name", str)

    def change(d: Any) -> bool:
        if d.spec.paused:
            raise ApiError(409, f"deployment {ns}/{name} is paused; resume it first")
        d.spec.template.metadata.annotations[rollout.RESTARTED_AT] = rfc3339(time.time())
        return True

    modify(client, "Deployment", name, change, namespace=ns)
    return f"deployment {ns}/{name} restarted"


def cordon(client: Client, body: dict[str, Any]) -> str:
    name, on = _field(body, "name", str), _field(body, "unschedulable", bool)

    def change(n: Any) -> bool:
        if n.spec.unschedulable == on:
            return False
        n.spec.unschedulable = on
        return True

    modify(client, "Node", name, change)
    return f"node {name} {'cordoned' if on else 'uncordoned'}"


def delete_pod(client: Client, body: dict[str, Any]) -> str:
    ns, name = _field(body, "namespace", str), _field(body, "name", str)
    client.pods.delete(name, namespace=ns)
    return f"pod {ns}/{name} deleted"


ACTIONS: dict[str, Callable[[Client, dict[str, Any]], str]] = {
    "scale": scale,
    "restart": restart,
    "cordon": cordon,
    "delete-pod": delete_pod,
}


def cluster(client: Client) -> dict[str, Any]:
    return cluster_report(client, 2.0)
