"""Events: what a component did to an object and why, as Kubernetes ``Event`` objects.

One recorder for every component (agent, scheduler, controllers), so they all write Events the
same way and ``hakubectl describe`` shows one consistent story.

Recording must never slow down or fail the work that records: ``record`` only enqueues, and a
background thread writes. Repeats of the same (object, type, reason, message) within ten minutes
update one Event's ``count`` and ``lastTimestamp`` instead of creating another, as Kubernetes'
recorder does, so a crash-looping pod does not flood the store. When the queue is full, events
are dropped (and counted) rather than blocking.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from hakube.api.timestamps import micro_time
from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import errors
from hakube.client.base import resolve_kind
from hakube.client.client import Client

log = logging.getLogger("hakube.events")

NORMAL = "Normal"
WARNING = "Warning"
_AGGREGATE_WINDOW = 600.0


def reference(obj: Any) -> meta_pb2.ObjectReference:
    """An ObjectReference to any typed object."""
    kind = resolve_kind(type(obj))
    meta = obj.metadata
    return meta_pb2.ObjectReference(
        kind=kind.name,
        api_version=kind.api_version,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
    )


class EventRecorder:
    """Writes Events for ``component`` (e.g. ``default-scheduler``) from a background thread."""

    def __init__(
        self, client: Client, component: str, *, host: str = "", max_pending: int = 1000
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.dropped = 0
        self._pending: queue.Queue[tuple[meta_pb2.ObjectReference, str, str, str] | None] = (
            queue.Queue(max_pending)
        )
        self._seen: dict[tuple[str, str, str, str, str], tuple[core_pb2.Event, float]] = {}
        self._thread = threading.Thread(target=self._run, name=f"events-{component}", daemon=True)
        self._thread.start()

    def record(self, obj: Any, type_: str, reason: str, message: str) -> None:
        """Queue an event about ``obj`` (a typed object or an ObjectReference); never blocks."""
        ref = obj if isinstance(obj, meta_pb2.ObjectReference) else reference(obj)
        log.info("%s %s %s/%s: %s %s", type_, ref.kind, ref.namespace, ref.name, reason, message)
        try:
            self._pending.put_nowait((ref, type_, reason, message))
        except queue.Full:
            self.dropped += 1

    def emit(self, obj: Any, reason: str, message: str, *, warning: bool = False) -> None:
        self.record(obj, WARNING if warning else NORMAL, reason, message)

    def normal(self, obj: Any, reason: str, message: str) -> None:
        self.record(obj, NORMAL, reason, message)

    def warning(self, obj: Any, reason: str, message: str) -> None:
        self.record(obj, WARNING, reason, message)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything recorded so far is written (for tests and clean stops)."""
        deadline = time.monotonic() + timeout
        while self._pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            item = self._pending.get()
            try:
                if item is None:
                    return
                self._write(*item)
            except errors.HakubeError as exc:
                log.debug("event not written: %s", exc)
            except Exception:
                log.exception("event not written")
            finally:
                self._pending.task_done()

    def _write(self, ref: meta_pb2.ObjectReference, type_: str, reason: str, message: str) -> None:
        now = time.monotonic()
        stamp = micro_time()
        key = (ref.namespace, ref.uid or ref.name, type_, reason, message)
        seen = self._seen.get(key)
        if seen is not None and now - seen[1] < _AGGREGATE_WINDOW:
            ev = core_pb2.Event()
            ev.CopyFrom(seen[0])
            ev.count += 1
            ev.last_timestamp = stamp
            ev.metadata.resource_version = ""
            try:
                self._seen[key] = (self.client.events.update(ev), now)
                return
            except errors.NotFound:
                pass  # deleted meanwhile: create a fresh one
        ns = ref.namespace or "default"
        ev = core_pb2.Event(
            metadata=meta_pb2.ObjectMeta(name=f"{ref.name}.{time.time_ns():x}", namespace=ns),
            involved_object=ref,
            reason=reason,
            message=message,
            type=type_,
            count=1,
            source=core_pb2.EventSource(component=self.component, host=self.host),
            first_timestamp=stamp,
            last_timestamp=stamp,
            event_time=stamp,
            reporting_component=self.component,
            reporting_instance=self.host,
        )
        self._seen[key] = (self.client.events.create(ev), now)
        if len(self._seen) > 4096:
            cutoff = now - _AGGREGATE_WINDOW
            self._seen = {k: v for k, v in self._seen.items() if v[1] >= cutoff}
