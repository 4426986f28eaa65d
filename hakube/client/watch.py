"""A watch that survives its master: resumes after disconnects, relists when history is gone.

The stream is tied to one master; masters die, restart and fall behind. ``Watch`` hides that:

- It remembers the resourceVersion of the last event it delivered (bookmarks, requested every
  ``BOOKMARK_SECONDS``, move it forward while nothing changes). When the stream breaks -
  connection lost, the master shutting down, the master dropping a watcher that fell behind
  (RESOURCE_EXHAUSTED), or silence longer than the idle timeout - it opens a new stream on the
  next master from that resourceVersion, after a jittered pause.
- Revisions only grow, so an event at or below the last delivered revision is a repeat (a master
  whose replica lags the one the watch left replays what the watch already saw) and is dropped.
  Together with resuming from the last revision this gives each event exactly once, in order.
- When the masters no longer keep the history after that revision (OUT_OF_RANGE), it lists the
  kind again and yields one synthetic ``RELIST`` event whose ``items`` are the complete current
  set, then carries on from the list's revision. What changed in between is not knowable event
  by event; a caller keeping state replaces it with ``items`` (the informer does exactly that).

Threading: iterate a Watch on one thread; ``stop()`` may be called from any thread and makes the
iteration end promptly. A watch without ``resource_version`` starts from the current revision
when ``Client.watch`` is called (it lists with limit 1 to learn it); it does not replay
existing objects - list first, or use an informer, for that.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import grpc

from hakube.api import kinds as kinds_mod
from hakube.api.kinds import Kind
from hakube.api.v1 import api_pb2
from hakube.client import errors
from hakube.client.base import KindLike, ObjectClient, list_namespace, resolve_kind

log = logging.getLogger("hakube.client.watch")

ADDED, MODIFIED, DELETED, BOOKMARK, RELIST = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "RELIST"
BOOKMARK_SECONDS = 5
"""Bookmark interval asked of the server: the heartbeat the idle timeout relies on."""

# Stream failures after which reopening (elsewhere) is the cure.
_RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


@dataclass
class WatchEvent:
    """One change. ``object`` is the typed object (its state after the change; for DELETED
    the last state). RELIST carries no object but ``items``, the full current list."""

    type: str
    object: Any | None
    resource_version: int
    items: list[Any] = field(default_factory=list)


def open_watch(
    client: ObjectClient,
    kind: KindLike,
    *,
    namespace: str | None = None,
    label_selector: str = "",
    field_selector: str = "",
    resource_version: str | int | None = None,
    bookmarks: bool = False,
) -> Watch:
    """A Watch of ``kind`` (by any name), over all namespaces unless ``namespace``; what
    ``Client.watch`` and the typed resources return."""
    k = resolve_kind(kind)
    return Watch(
        client,
        k,
        namespace=list_namespace(k, namespace),
        label_selector=label_selector,
        field_selector=field_selector,
        resource_version=resource_version,
        bookmarks=bookmarks,
    )


class Watch:
    """A resumable watch; see the module docstring. Create it with ``Client.watch``."""

    def __init__(
        self,
        client: ObjectClient,
        kind: Kind,
        *,
        namespace: str,
        label_selector: str,
        field_selector: str,
        resource_version: str | int | None,
        bookmarks: bool,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.bookmarks = bookmarks
        rv = str(resource_version) if resource_version is not None else ""
        self._rv: int | None = int(rv) if rv not in ("", "0") else None
        if self._rv is None:
            # "From now" means from this call, not from the first next(): learn the revision
            # here (Unavailable if no master answers within the client's deadline).
            self._rv = int(client.list(kind, namespace=namespace or None, limit=1).resource_version)
        self._pending: collections.deque[WatchEvent] = collections.deque()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._endpoint = ""
        self._idle_fired = False
        self._retry = 0
        self.last_activity = time.monotonic()
        self.idle_timeout = client.settings.watch_idle_timeout
        # Counters, for tests and metrics.
        self.reconnects = 0
        self.relists = 0
        self.duplicates_dropped = 0

    # -- public -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        """The revision reached: the last delivered event's (or bookmark's)."""
        return str(self._rv or "")

    @property
    def endpoint(self) -> str:
        """The master the stream is currently open on (empty between streams)."""
        return self._endpoint

    def stop(self) -> None:
        """End the watch (idempotent, any thread); iteration stops promptly."""
        self._stopped.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchEvent:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._stopped.is_set():
                self._close()
                raise StopIteration
            with self._lock:
                call = self._call
            if call is None:
                self._open()
                continue
            try:
                raw = next(call)
            except StopIteration:
                self._reconnect_after("the master ended the stream", advance=True)
                continue
            except grpc.RpcError as exc:
                self._on_error(exc)
                continue
            ev = self._translate(raw)
            if ev is not None:
                return ev

    # -- internals ----------------------------------------------------------------------------

    def _open(self) -> None:
        transport = self.client.transport
        ep = transport.current()
        req = api_pb2.WatchRequest(
            kind=self.kind.name,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=str(self._rv),
            allow_bookmarks=True,
            bookmark_interval_seconds=BOOKMARK_SECONDS,
        )
        call = transport.stubs(ep).objects.Watch(req)
        with self._lock:
            if self._stopped.is_set():
                call.cancel()
                return
            self._call = call
            self._endpoint = ep
            self._idle_fired = False
        self.last_activity = time.monotonic()
        _WATCHDOG.add(self)

    def _close(self) -> None:
        with self._lock:
            call, self._call, self._endpoint = self._call, None, ""
        _WATCHDOG.remove(self)
        if call is not None:
            call.cancel()

    def _translate(self, raw: api_pb2.WatchEvent) -> WatchEvent | None:
        self.last_activity = time.monotonic()
        self._retry = 0
        rv = int(raw.resource_version or 0)
        assert self._rv is not None
        if raw.type == BOOKMARK:
            if rv > self._rv:
                self._rv = rv
            return WatchEvent(BOOKMARK, None, rv) if self.bookmarks else None
        if rv <= self._rv:
            self.duplicates_dropped += 1
            return None
        self._rv = rv
        return WatchEvent(raw.type, kinds_mod.unwrap(raw.object)[1], rv)

    def _on_error(self, exc: grpc.RpcError) -> None:
        code = exc.code()
        if self._stopped.is_set():
            self._close()
            return
        if code == grpc.StatusCode.OUT_OF_RANGE:
            self._close()
            log.info("watch %s: history after %s is gone; relisting", self.kind.plural, self._rv)
            self._relist()
            return
        if code in _RESUMABLE:
            why = (
                "no event or bookmark within the idle timeout"
                if self._idle_fired
                else f"{code.name}: {exc.details()}"
            )
            # A watcher dropped for being slow may stay on its master; anything else moves on.
            self._reconnect_after(
                why,
                advance=code != grpc.StatusCode.RESOURCE_EXHAUSTED,
                at_least=errors.retry_after(exc) or 0.0,
            )
            return
        self._close()
        err = errors.from_rpc_error(exc)
        raise err from exc

    def _reconnect_after(self, why: str, *, advance: bool, at_least: float = 0.0) -> None:
        """Resume after a pause (at least ``at_least`` seconds: a master's retry hint)."""
        ep = self._endpoint
        self._close()
        if advance and ep:
            self.client.transport.advance(ep)
        self.reconnects += 1
        log.info(
            "watch %s on %s broke (%s); resuming from %s on %s",
            self.kind.plural,
            ep or "?",
            why,
            self._rv,
            self.client.transport.current(),
        )
        pause = self.client.settings.policy.pause(self._retry)
        self._stopped.wait(max(pause, at_least + random.uniform(0, at_least)))
        self._retry += 1

    def _fire_idle(self, now: float) -> None:
        """Watchdog thread: cancel a stream that has been silent too long."""
        if now - self.last_activity <= self.idle_timeout:
            return
        with self._lock:
            call = self._call
            if call is None:
                return
            self._idle_fired = True
        call.cancel()

    def _list_until_stopped(self) -> Any:
        while not self._stopped.is_set():
            try:
                return self.client.list(
                    self.kind,
                    namespace=self.namespace or None,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                )
            except errors.Unavailable as exc:
                log.warning("watch %s: cannot list (%s); still trying", self.kind.plural, exc)
                self._stopped.wait(self.client.settings.policy.backoff_cap)
        return None

    def _relist(self) -> None:
        lst = self._list_until_stopped()
        if lst is None:
            return
        self.relists += 1
        self._rv = int(lst.resource_version)
        self._pending.append(WatchEvent(RELIST, None, self._rv, items=lst.items))


class _Watchdog:
    """One daemon thread for all watches of the process: cancels silent streams."""

    def __init__(self) -> None:
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, w: Watch) -> None:
        with self._lock:
            self._watches.add(w)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hakube-watchdog", daemon=True
                )
                self._thread.start()

    def remove(self, w: Watch) -> None:
        with self._lock:
            self._watches.discard(w)

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            with self._lock:
                watches = list(self._watches)
            now = time.monotonic()
            for w in watches:
                w._fire_idle(now)


_WATCHDOG = _Watchdog()
