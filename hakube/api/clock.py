"""The one clock abstraction: what components read "now" from, so tests can move time.

Components that make decisions from the wall clock (the CronJob controller's schedules) take a
``Clock`` instead of calling ``time.time()``; production passes ``SYSTEM_CLOCK``, tests pass
``hakube.testing.clock.FakeClock`` and move it. A clock may also *jump* (a fake clock set
forward); ``on_jump`` lets a component re-examine what depends on time at once rather than at
its next timer, which real time never needs. Durations that only measure intervals (back-off,
queue waits) use ``monotonic``. The Raft apply path never reads a clock: replicas must apply
the same entries to the same state whatever their clocks say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def on_jump(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) whenever the clock jumps; returns the
        function that unsubscribes."""
        ...


class SystemClock:
    """The host's clocks. Real time does not jump as far as components care, so ``on_jump``
    never calls back."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def on_jump(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None


SYSTEM_CLOCK: Clock = SystemClock()
