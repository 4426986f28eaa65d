"""Events about pods (Pulling, Pulled, Created, Started, Killing, BackOff, Unhealthy, Failed).

Posted from a thread of their own, best effort: a reconcile never waits for the API to take an
event, and when the masters are away events are dropped after the queue fills (the pod's status,
which is retried, is what must not be lost). Repeats of the same (object, reason, message)
update one Event's count instead of creating more, as Kubernetes' recorder does.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from typing import Any

from hakube.agent.status import rfc3339
from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import Client, HakubeError

log = logging.getLogger("hakube.agent.events")
COMPONENT = "hakube-agent"


class EventRecorder:
    def __init__(self, client: Client, node: str, *, max_queued: int = 1000) -> None:
        self.client = client
        self.node = node
        self._queue: queue.Queue[tuple[Any, str, str, str] | None] = queue.Queue(max_queued)
        self._seen: dict[tuple[str, str, str], core_pb2.Event] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agent-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(5)
            self._thread = None

    def emit(self, obj: Any, reason: str, message: str, *, warning: bool = False) -> None:
        """Record an event about ``obj`` (a pod or the node); never blocks."""
        log.info(
            "%s %s/%s: %s %s",
            "Warning" if warning else "Normal",
            obj.metadata.namespace,
            obj.metadata.name,
            reason,
            message,
        )
        try:
            self._queue.put_nowait((obj, reason, message, "Warning" if warning else "Normal"))
        except queue.Full:
            pass

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._post(*item)
            except HakubeError as exc:
                log.debug("event dropped: %s", exc)
            except Exception:  # an event must never take the agent down
                log.exception("event dropped")

    def _post(self, obj: Any, reason: str, message: str, etype: str) -> None:
        meta = obj.metadata
        ns = meta.namespace or "default"
        key = (meta.uid, reason, message)
        now = rfc3339(time.time())
        prev = self._seen.get(key)
        if prev is not None:
            ev = core_pb2.Event()
            ev.CopyFrom(prev)
            ev.count += 1
            ev.last_timestamp = now
            ev.metadata.resource_version = ""
            try:
                self._seen[key] = self.client.events.update(ev)
                return
            except HakubeError:
                pass  # gone (events expire) or changed: write a new one
        kind = type(obj).__name__
        ev = core_pb2.Event(
            metadata=meta_pb2.ObjectMeta(name=f"{meta.name}.{uuid.uuid4().hex[:12]}", namespace=ns),
            involved_object=meta_pb2.ObjectReference(
                kind=kind, namespace=meta.namespace, name=meta.name, uid=meta.uid, api_version="v1"
            ),
            reason=reason,
            message=message,
            type=etype,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=core_pb2.EventSource(component=COMPONENT, host=self.node),
            reporting_component=COMPONENT,
            reporting_instance=self.node,
        )
        self._seen[key] = self.client.events.create(ev)
        if len(self._seen) > 5000:
            self._seen.pop(next(iter(self._seen)))
