"""Expectations: what a controller has asked for but not yet seen in its informer cache.

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
from collections.abc import Hashable
from dataclasses import dataclass, field

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
