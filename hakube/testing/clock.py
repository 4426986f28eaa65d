"""``FakeClock``: time that moves only when a test moves it (``hakube.api.clock.Clock``).

Used with components run in the test's process (e.g. ``ControllerManager(clock=...)``): the
test sets the time, every subscriber hears the jump and re-examines what depends on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class FakeClock:
    def __init__(self, now: float, monotonic: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._now = now
        self._mono = monotonic
        self._subscribers: list[Callable[[], None]] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def set(self, now: float) -> None:
        """Jump the wall clock to ``now`` (forward or back); the monotonic clock moves forward
        by as much when the jump is forward."""
        with self._lock:
            self._mono += max(0.0, now - self._now)
            self._now = now
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def on_jump(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe
