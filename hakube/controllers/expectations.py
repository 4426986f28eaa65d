"""Expectations: what a controller has asked for but not yet seen in its informer cache.

Two flavours, for two ways of counting. ``Expectations`` (ReplicaSet) counts creations and is
ticked off by the controller's informer handlers: it suits a controller that creates a burst of
``generateName`` pods and must stop counting the moment the events arrive. ``PodNameExpectations``
(Job, DaemonSet, StatefulSet, through ``owned.PodControl``) remembers the names it created or
deleted and is checked against the owner's pods in the cache at sync time, so those controllers
need no extra handler wiring. Both lapse after a TTL; both are empty in a new leadership term.

A controller that creates three pods and syncs again before its pod informer shows them would
count too few pods and create three more. So before acting it records, per owner key, how many
creations it expects to observe and which pods it expects to see deleted; informer handlers tick
them off; ``satisfied`` is False (do not manage replicas, only report status) until they are all
observed, or until ``ttl`` has passed (a create whose watch event was lost must not block the
owner forever; Kubernetes uses five minutes).

A new leadership term starts with empty expectations *and* freshly listed caches, which is why
a failover cannot double-create either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTL = 300.0


@dataclass
class _Pending:
    adds: int = 0
    deletes: set[Hashable] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


class Expectations:
    """Per-owner pending creations (a count) and deletions (the keys of the pods)."""

    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._by_owner: dict[Hashable, _Pending] = {}

    def satisfied(self, owner: Hashable) -> bool:
        with self._lock:
            p = self._by_owner.get(owner)
            if p is None:
                return True
            if p.adds <= 0 and not p.deletes:
                return True
            return time.monotonic() - p.since > self.ttl

    def expect_creations(self, owner: Hashable, n: int) -> None:
        with self._lock:
            self._by_owner[owner] = _Pending(adds=n)

    def expect_deletions(self, owner: Hashable, keys: list[Hashable]) -> None:
        with self._lock:
            self._by_owner[owner] = _Pending(deletes=set(keys))

    def creation_observed(self, owner: Hashable) -> None:
        with self._lock:
            p = self._by_owner.get(owner)
            if p is not None:
                p.adds -= 1

    def creation_failed(self, owner: Hashable, n: int = 1) -> None:
        """A create we expected will never be observed (it failed or was skipped)."""
        with self._lock:
            p = self._by_owner.get(owner)
            if p is not None:
                p.adds -= n

    def deletion_observed(self, owner: Hashable, key: Hashable) -> None:
        with self._lock:
            p = self._by_owner.get(owner)
            if p is not None:
                p.deletes.discard(key)

    def forget(self, owner: Hashable) -> None:
        with self._lock:
            self._by_owner.pop(owner, None)


class PodNameExpectations:
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
