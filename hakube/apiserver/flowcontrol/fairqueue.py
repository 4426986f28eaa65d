"""One priority level's seats and shuffle-sharded fair queues, on the API server's event loop.

A request takes a seat at once while the level has a free one and nobody is waiting (the fast
path: two integer operations). Otherwise it joins a queue: its flow (a hash of the client's
identity, and namespace for some schemas) is dealt a fixed hand of ``hand_size`` queues out of
``queues`` (shuffle sharding, as Kubernetes does), and the request joins the shortest queue of
that hand. When a seat frees up, the queues are served round robin, one request per non-empty
queue per round. A noisy flow therefore fills at most its own hand of queues, and a quiet flow
whose hand differs in even one queue keeps that queue short and is served within one round:
fairness without tracking every flow.

A full queue refuses the request at once (``Rejected("queue-full")``); a request that waited
``queue_wait`` seconds without a seat is refused (``Rejected("timeout")``). Both become
RESOURCE_EXHAUSTED with a retry hint in hakube.apiserver.flowcontrol.controller.

Threading: everything runs on the event loop of the API server; no locks. Costs are measured
by ``bench/bench_priority.py --micro`` (a few microseconds per request).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time

from hakube.apiserver.flowcontrol.config import PriorityLevel


class Rejected(Exception):
    """The level refused the request; ``reason`` is a bounded metric label."""

    def __init__(self, level: str, reason: str) -> None:
        super().__init__(f"{level}: {reason}")
        self.level = level
        self.reason = reason


def deal(flow: str, queues: int, hand_size: int) -> tuple[int, ...]:
    """The hand of distinct queue indices dealt to ``flow`` (deterministic: the same flow gets
    the same hand on every master and after a restart). Kubernetes' dealer, in spirit: the
    flow's hash is read as a mixed-radix number whose digits pick queues without replacement."""
    value = int.from_bytes(hashlib.blake2b(flow.encode(), digest_size=8).digest(), "big")
    remaining = list(range(queues))
    hand = []
    for _ in range(hand_size):
        value, pick = divmod(value, len(remaining))
        hand.append(remaining.pop(pick))
    return tuple(hand)


class QueueSet:
    """Seats and queues of one non-exempt priority level. See the module docstring."""

    def __init__(self, level: PriorityLevel, seats: int, *, queue_length: int = 0) -> None:
        self.level = level
        self.name = level.name
        self.seats = max(1, seats)
        self.queue_length = queue_length or level.queue_length
        self.executing = 0
        self.waiting = 0
        self.queues: list[collections.deque[asyncio.Future[None]]] = [
            collections.deque() for _ in range(level.queues)
        ]
        self._hands: dict[str, tuple[int, ...]] = {}
        self._next = 0
        """The queue the next round-robin turn starts at."""

    def try_seat(self) -> bool:
        """Take a seat now if one is free and nobody waits for one (no queue jumping)."""
        if self.executing < self.seats and not self.waiting:
            self.executing += 1
            return True
        return False

    def hand(self, flow: str) -> tuple[int, ...]:
        found = self._hands.get(flow)
        if found is None:
            if len(self._hands) > 10000:  # identities are bounded, but do not grow forever
                self._hands.clear()
            found = self._hands[flow] = deal(flow, len(self.queues), self.level.hand_size)
        return found

    def enqueue(self, flow: str) -> asyncio.Future[None]:
        """Queue a request of ``flow``; the future resolves when it holds a seat. Rejected at
        once when the shortest queue of the flow's hand is full."""
        queues = self.queues
        best = min(self.hand(flow), key=lambda i: len(queues[i]))
        queue = queues[best]
        if len(queue) >= self.queue_length:
            raise Rejected(self.name, "queue-full")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        self.waiting += 1
        return fut

    def forget(self, fut: asyncio.Future[None]) -> None:
        """A queued request gave up (timed out, or its caller went away): drop it."""
        for queue in self.queues:
            try:
                queue.remove(fut)
            except ValueError:
                continue
            self.waiting -= 1
            return

    def release(self) -> None:
        """A request finished: its seat goes to the next queued request, round robin."""
        self.executing -= 1
        if self.waiting:
            self._dispatch()

    def _dispatch(self) -> None:
        queues = self.queues
        n = len(queues)
        while self.executing < self.seats and self.waiting:
            for step in range(n):
                i = (self._next + step) % n
                if queues[i]:
                    break
            else:  # pragma: no cover - waiting counts exactly the queued futures
                self.waiting = 0
                return
            self._next = (i + 1) % n
            fut = queues[i].popleft()
            self.waiting -= 1
            if fut.done():  # cancelled by a caller that went away; not counted as waiting
                continue
            self.executing += 1
            fut.set_result(None)

    async def acquire(self, flow: str, wait: float) -> float:
        """Hold a seat of this level (release with ``release``); returns the seconds waited.
        Rejected when the queue is full or no seat came within ``wait`` seconds."""
        if self.try_seat():
            return 0.0
        fut = self.enqueue(flow)
        start = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return time.monotonic() - start  # the seat came as the time ran out
            self.forget(fut)
            raise Rejected(self.name, "timeout") from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the seat came just as the caller left: hand it on
            else:
                self.forget(fut)
            raise
        return time.monotonic() - start
