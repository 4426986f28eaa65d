"""Events: what a component did to an object and why, as Kubernetes ``Event`` objects.

One recorder for every component (agent, scheduler, controllers), so they all write Events the
same way and ``hakubectl describe`` shows one consistent story.

Recording must never slow down or fail the work that records: ``record`` only enqueues, and a
background thread writes. Repeats of the same (object, type, reason, message) within ten minutes
update one Event's ``count`` and ``lastTimestamp`` instead of creating another, as Kubernetes'
recorder does, so a crash-looping pod does not flood the store. When the queue is full, events
are dropped (and counted) rather than blocking.

Given a ``BatchWriter`` (a component that writes many events, such as the scheduler's one per
bound pod), the thread sends everything queued at once through it, many events per call, and
waits for their answers before the next round; without one it writes one event per call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from hakube.api.timestamps import micro_time
from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import errors
from hakube.client.base import resolve_kind
from hakube.client.batch import BatchWriter
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
        self,
        client: Client,
        component: str,
        *,
        host: str = "",
        max_pending: int = 1000,
        writer: BatchWriter | None = None,
    ) -> None:
        self.client = client
        self.writer = writer
        self.component = component
        self.host = host
        self.dropped = 0
        self._pending: queue.Queue[tuple[meta_pb2.ObjectReference, str, str, str] | None] = (
            queue.Queue(max_pending)
        )
        self._seen: dict[_Key, tuple[core_pb2.Event, float]] = {}
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
            items = [self._pending.get()]
            while self.writer is not None and items[-1] is not None and len(items) < _ROUND:
                try:
                    items.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_round(items)
            except Exception:
                log.exception("events not written")
            finally:
                for _ in items:
                    self._pending.task_done()
            if items[-1] is None:
                return

    def _write_round(
        self, items: list[tuple[meta_pb2.ObjectReference, str, str, str] | None]
    ) -> None:
        """Send every event of ``items`` (a repeat of one already in flight waits for it, so
        it updates that event), then note what was written."""
        flight: dict[_Key, tuple[Future[Any], core_pb2.Event, bool]] = {}
        for item in items:
            if item is None:
                break
            ref, type_, reason, message = item
            key = (ref.namespace, ref.uid or ref.name, type_, reason, message)
            if key in flight:
                self._settle(flight)
            ev, update = self._event(key, ref, type_, reason, message)
            flight[key] = (self._send(ev, update), ev, update)
        self._settle(flight)

    def _settle(self, flight: dict[_Key, tuple[Future[Any], core_pb2.Event, bool]]) -> None:
        now = time.monotonic()
        for key, (f, ev, update) in flight.items():
            try:
                try:
                    self._seen[key] = (f.result(), now)
                except errors.NotFound:
                    if not update:
                        raise
                    self._seen.pop(key, None)  # deleted meanwhile: create a fresh one
                    ns, name, type_, reason, message = key
                    fresh, _ = self._event(key, ev.involved_object, type_, reason, message)
                    self._seen[key] = (self._send(fresh, False).result(), now)
            except errors.HakubeError as exc:
                log.debug("event not written: %s", exc)
        flight.clear()
        if len(self._seen) > 4096:
            cutoff = now - _AGGREGATE_WINDOW
            self._seen = {k: v for k, v in self._seen.items() if v[1] >= cutoff}

    def _send(self, ev: core_pb2.Event, update: bool) -> Future[Any]:
        if self.writer is not None:
            return self.writer.update(ev) if update else self.writer.create(ev)
        f: Future[Any] = Future()
        try:
            f.set_result(self.client.events.update(ev) if update else self.client.events.create(ev))
        except errors.HakubeError as exc:
            f.set_exception(exc)
        return f

    def _event(
        self, key: _Key, ref: meta_pb2.ObjectReference, type_: str, reason: str, message: str
    ) -> tuple[core_pb2.Event, bool]:
        """The write for one occurrence: the aggregated event with its count raised (True), or
        a new event (False)."""
        stamp = micro_time()
        seen = self._seen.get(key)
        if seen is not None and time.monotonic() - seen[1] < _AGGREGATE_WINDOW:
            ev = core_pb2.Event()
            ev.CopyFrom(seen[0])
            ev.count += 1
            ev.last_timestamp = stamp
            ev.metadata.resource_version = ""
            return ev, True
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
        return ev, False


_Key = tuple[str, str, str, str, str]
_ROUND = 128
"""Events sent together in one round through a BatchWriter."""
