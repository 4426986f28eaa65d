"""Exponential back-off per key: crashed containers, failed image pulls.

Kubernetes' rule: the first failure is retried at once; after that the delay starts at
``base`` and doubles up to ``cap`` (10 s .. 5 min). A key that has not failed for ``reset``
seconds (a container that ran 10 min) starts over. Only the agent's memory holds this: an agent
restart forgets it, as the kubelet's does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last: float
    """When the delay was last raised."""


class BackOff:
    """Thread-safe; ``clock`` is injectable for tests."""

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        reset: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base, self.cap, self.reset, self.clock = base, cap, reset, clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def next(self, key: str) -> float:
        """Record one more failure of ``key`` (a restart is being done now); returns the delay
        that will hold the following retry."""
        now = self.clock()
        with self._lock:
            e = self._entries.get(key)
            if e is None or now - e.last > self.reset:
                e = self._entries[key] = _Entry(self.base, now)
            else:
                e.delay, e.last = min(e.delay * 2, self.cap), now
            return e.delay

    def remaining(self, key: str, since: float | None = None) -> float:
        """Seconds left before ``key`` may be retried, counting from ``since`` (e.g. when the
        container exited, on this clock; default: the last failure); 0 if it may be retried
        now."""
        with self._lock:
            e = self._entries.get(key)
            if e is None or self.clock() - e.last > self.reset:
                return 0.0
            start = e.last if since is None else since
            return max(0.0, start + e.delay - self.clock())

    def forget(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (a pod that is gone)."""
        with self._lock:
            for k in [k for k in self._entries if k.startswith(prefix)]:
                del self._entries[k]
