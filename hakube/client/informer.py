"""Informer: a local, always-current copy of one kind, with change handlers.

The scheduler, the controllers and the node agents learn state this way (snapshot, then watch)
and never poll. An informer lists the kind, fills its cache, then follows a resumable ``Watch``
from the list's revision; when the watch has to relist, the new list replaces the cache and the
difference is delivered as add/update/delete calls, so handlers see a consistent story either
way.

Threading model (one thread per informer, handlers never concurrent):

- ``run()`` blocks and does everything: list, watch, cache writes, handler calls, resync. Call it
  on a thread you own, or use ``start()``, which runs it on a daemon thread named after the kind.
- Handlers run on that thread, one at a time, in revision order. A slow handler delays the ones
  after it (and, beyond the master's queue limit, makes the watch resume), so handlers should
  only note what changed - put a key on a work queue - and do the work elsewhere.
- The cache is safe to read from any thread (``get``, ``list``, ``keys``). Objects handed out
  are the cache's own: treat them as read-only, copy before changing.
- ``stop()`` is idempotent, may be called from any thread (a handler included) and makes
  ``run()`` return promptly.

Resync (``resync_period`` seconds, 0 = off) calls ``on_update(obj, obj)`` for every cached
object, so a level-triggered controller revisits everything periodically even if it dropped a
key. It runs on the informer thread between events; bookmarks wake the thread at least every
few seconds, so resync is late by at most that much.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from hakube.client import errors
from hakube.client.base import KindLike, ObjectClient, resolve_kind
from hakube.client.watch import ADDED, BOOKMARK, DELETED, MODIFIED, RELIST, Watch, open_watch

log = logging.getLogger("hakube.client.informer")
M = TypeVar("M", bound=Message)
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped kinds."""


def key_of(obj: Any) -> Key:
    return (obj.metadata.namespace, obj.metadata.name)


@dataclass
class Handlers(Generic[M]):
    """Callbacks for one consumer; any may be None."""

    on_add: Callable[[M], None] | None = None
    on_update: Callable[[M, M], None] | None = None
    """Called with (old, new)."""
    on_delete: Callable[[M], None] | None = None
    """Called with the last known state."""


class Informer(Generic[M]):
    """See the module docstring."""

    def __init__(
        self,
        client: ObjectClient,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0.0,
    ) -> None:
        self.client = client
        self.kind = resolve_kind(kind)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self._cache: dict[Key, M] = {}
        self._lock = threading.Lock()
        self._handlers: builtins.list[Handlers[M]] = []
        self._indexers: dict[str, Callable[[M], str]] = {}
        self._indices: dict[str, dict[str, set[Key]]] = {}
        """Per index: value -> keys of the cached objects ``_indexers[name]`` maps to it; kept
        with the cache under ``_lock``."""
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None
        self._next_resync = 0.0
        self.resource_version = ""
        """The revision the cache reflects."""

    # -- configuration ------------------------------------------------------------------------

    def add_handlers(
        self,
        on_add: Callable[[M], None] | None = None,
        on_update: Callable[[M, M], None] | None = None,
        on_delete: Callable[[M], None] | None = None,
    ) -> None:
        """Register callbacks, normally before ``start()``. A consumer added after the first
        sync first gets ``on_add`` for everything already cached, called on the registering
        thread (so, unlike later calls, these may overlap with the informer thread's)."""
        h = Handlers(on_add, on_update, on_delete)
        with self._lock:
            self._handlers.append(h)
            late = list(self._cache.values()) if self._synced.is_set() else []
        for obj in late:
            self._call(h.on_add, obj)

    def add_index(self, name: str, value_of: Callable[[M], str]) -> None:
        """Keep the cache indexed by ``value_of(obj)`` (e.g. a pod's node name), so that
        ``by_index`` finds the objects with one value without a scan of the whole kind. Adding
        an index under a name already used replaces it (informers are shared)."""
        with self._lock:
            self._indexers[name] = value_of
            self._indices[name] = self._build_index(value_of, self._cache)

    @staticmethod
    def _build_index(value_of: Callable[[M], str], cache: dict[Key, M]) -> dict[str, set[Key]]:
        index: dict[str, set[Key]] = {}
        for k, obj in cache.items():
            index.setdefault(value_of(obj), set()).add(k)
        return index

    def _index_move(self, k: Key, old: M | None, new: M | None) -> None:
        """Move ``k`` from ``old``'s index values to ``new``'s (caller holds ``_lock``)."""
        for name, value_of in self._indexers.items():
            index = self._indices[name]
            before = value_of(old) if old is not None else None
            after = value_of(new) if new is not None else None
            if before == after:
                continue
            if before is not None:
                keys = index.get(before)
                if keys is not None:
                    keys.discard(k)
                    if not keys:
                        del index[before]
            if after is not None:
                index.setdefault(after, set()).add(k)

    # -- cache reads (any thread) -------------------------------------------------------------

    def by_index(self, name: str, value: str) -> builtins.list[M]:
        """The cached objects whose index ``name`` (see ``add_index``) has ``value``."""
        with self._lock:
            return [self._cache[k] for k in self._indices[name].get(value, ())]

    def get(self, name: str, namespace: str = "") -> M | None:
        ns = namespace if self.kind.namespaced else ""
        if self.kind.namespaced and not ns:
            ns = self.client.settings.namespace
        with self._lock:
            return self._cache.get((ns, name))

    def list(self) -> builtins.list[M]:
        with self._lock:
            return list(self._cache.values())

    def keys(self) -> builtins.list[Key]:
        with self._lock:
            return list(self._cache)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until the first list is in the cache; False on timeout."""
        return self._synced.wait(timeout)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Informer[M]:
        """Run on a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.run, daemon=True, name=f"informer-{self.kind.plural}"
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop (idempotent, any thread); waits for the thread ``start()`` made, unless called
        from it."""
        self._stopped.set()
        w = self._watch
        if w is not None:
            w.stop()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def run(self) -> None:
        """List, then follow the watch until ``stop()``; survives any master failure."""
        retry = 0
        while not self._stopped.is_set():
            try:
                self._list_and_watch()
                retry = 0
            except errors.HakubeError as exc:
                # Unavailable past the client deadline, or a bad selector; keep trying - an
                # operator may fix the cluster - but say so.
                log.warning("informer %s: %s; retrying", self.kind.plural, exc)
            except Exception:  # a bug must not silently end the cache everyone reads
                log.exception("informer %s failed; restarting it", self.kind.plural)
            else:
                continue
            self._stopped.wait(self.client.settings.policy.pause(retry) + 0.5)
            retry += 1

    def _list_and_watch(self) -> None:
        lst = self.client.list(
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self._replace(lst.items, lst.resource_version)
        if not self._synced.is_set():
            self._next_resync = time.monotonic() + self.resync_period
            self._synced.set()
        w = open_watch(
            self.client,
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=lst.resource_version,
            bookmarks=True,
        )
        self._watch = w
        if self._stopped.is_set():
            w.stop()
        for ev in w:
            if ev.type == RELIST:
                self._replace(ev.items, str(ev.resource_version))
            elif ev.object is None:
                pass  # a bookmark
            elif ev.type in (ADDED, MODIFIED):
                self._upsert(ev.object)
            elif ev.type == DELETED:
                self._remove(ev.object)
            if ev.type != BOOKMARK or ev.resource_version > int(self.resource_version or 0):
                self.resource_version = str(ev.resource_version)
            self._maybe_resync()
        self._watch = None

    # -- cache writes (informer thread) -------------------------------------------------------

    def _upsert(self, obj: M) -> None:
        k = key_of(obj)
        with self._lock:
            old = self._cache.get(k)
            self._cache[k] = obj
            self._index_move(k, old, obj)
            handlers = list(self._handlers)
        for h in handlers:
            if old is None:
                self._call(h.on_add, obj)
            else:
                self._call(h.on_update, old, obj)

    def _remove(self, obj: M) -> None:
        k = key_of(obj)
        with self._lock:
            old = self._cache.pop(k, None)
            self._index_move(k, old, None)
            handlers = list(self._handlers)
        if old is None:
            return
        for h in handlers:
            self._call(h.on_delete, obj)

    def _replace(self, items: builtins.list[M], rv: str) -> None:
        """Make the cache equal ``items``, telling handlers what differs."""
        fresh = {key_of(o): o for o in items}
        with self._lock:
            old = self._cache
            self._cache = fresh
            for name, value_of in self._indexers.items():
                self._indices[name] = self._build_index(value_of, fresh)
            handlers = list(self._handlers)
            self.resource_version = rv
        for k, obj in old.items():
            if k not in fresh:
                for h in handlers:
                    self._call(h.on_delete, obj)
        for k, obj in fresh.items():
            prev = old.get(k)
            for h in handlers:
                if prev is None:
                    self._call(h.on_add, obj)
                elif prev.metadata.resource_version != obj.metadata.resource_version:  # type: ignore
                    self._call(h.on_update, prev, obj)

    def _maybe_resync(self) -> None:
        if self.resync_period <= 0 or time.monotonic() < self._next_resync:
            return
        self._next_resync = time.monotonic() + self.resync_period
        with self._lock:
            objs = list(self._cache.values())
            handlers = list(self._handlers)
        for obj in objs:
            for h in handlers:
                self._call(h.on_update, obj, obj)

    def _call(self, fn: Callable[..., None] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # a consumer's bug must not stop the informer for everyone
            log.exception("informer %s: handler %r failed", self.kind.plural, fn)
