"""Group commit: concurrent writes from the API server become one replicated command.

pysyncobj either batches on a timer (~100 ms per synchronous write) or sends every command at
once (~1-2 ms, but throughput falls under concurrency). The proposer keeps at most
``max_inflight`` commands in the Raft pipeline and, while they are in flight, gathers every new
operation into the next batch. A lone write therefore costs one round trip, and under load each
round trip carries hundreds of writes.

Threading: ``submit`` may be called from any thread. Completion callbacks arrive on the Raft
thread, which also calls ``tick`` to expire batches that never got an answer (for example a
command queued while the cluster lost its quorum), so a lost answer never wedges the pipeline.

``submit_async`` is the API server's path: it returns an asyncio future, and a finished batch
settles all of its asyncio futures with one ``call_soon_threadsafe`` per event loop, instead of
one thread hop (a self-pipe write and a loop wake-up) per request as ``wrap_future`` would cost.
Under load a batch holds hundreds of requests, so this removes most cross-thread traffic.
It also defers proposing to the end of the current loop iteration (``call_soon``): the API server
decodes requests one by one, and a Raft round trip is about as long as a few requests' handling,
so proposing each at once would send batches of two or three operations and pay the per-command
cost of Raft (pickling, compression, a message to every follower, a journal write) per handful
of writes. Everything handled in one iteration goes out as one command instead.

Priority lane: an operation submitted while ``urgent`` is true in the caller's context (the API
server sets it for the priority levels of node heartbeats and leader election) goes into the
next batch ahead of every ordinary pending operation, that batch takes ordinary operations only
up to ``urgent_batch_bytes``, and it may go out while the pipeline is full (one command beyond
``max_inflight``): a Lease renewal is proposed at once, never behind megabytes of bulk writes
queued before it. (It still commits after the commands proposed before it: one Raft log.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON

from hakube.store.errors import NotApplied, OutcomeUnknown, StoreError, Unavailable
from hakube.store.ops import Op, Result, payload_bytes

# Failures after which the command is known not to be (and never to become) committed.
_NOT_APPLIED = {
    FAIL_REASON.QUEUE_FULL,
    FAIL_REASON.MISSING_LEADER,
    FAIL_REASON.DISCARDED,
    FAIL_REASON.NOT_LEADER,
    FAIL_REASON.REQUEST_DENIED,
}


urgent: contextvars.ContextVar[bool] = contextvars.ContextVar("hakube_urgent", default=False)
"""True while serving a request whose writes take the priority lane (set per request task)."""

AnyFuture = concurrent.futures.Future[Result] | asyncio.Future[Result]
"""A waiter: a concurrent future (``submit``) or an asyncio future (``submit_async``)."""


class _Batch:
    __slots__ = ("ops", "futures", "deadline", "done", "started")

    def __init__(self, ops: list[Op], futures: list[AnyFuture], deadline: float) -> None:
        self.ops = ops
        self.futures = futures
        self.deadline = deadline
        self.started = time.monotonic()
        self.done = False


class Proposer:
    """Batches operations into ``apply_batch`` commands; see the module docstring."""

    def __init__(
        self,
        apply_batch: Callable[..., Any],
        *,
        can_propose: Callable[[], bool],
        max_inflight: int = 2,
        max_batch: int = 2048,
        max_batch_bytes: int = 8 * 1024 * 1024,
        urgent_batch_bytes: int = 256 * 1024,
        timeout: float = 5.0,
        on_latency: Callable[[float, int], None] | None = None,
    ) -> None:
        """``apply_batch(ops, callback=...)`` is the replicated method; ``can_propose`` says
        whether a quorum is reachable now (checked before queueing, so a minority fails fast)."""
        self._apply_batch = apply_batch
        self._can_propose = can_propose
        self._max_inflight = max_inflight
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._urgent_batch_bytes = urgent_batch_bytes
        self._timeout = timeout
        self._on_latency = on_latency
        self._lock = threading.Lock()
        self._pending: list[tuple[Op, AnyFuture]] = []
        self._urgent: list[tuple[Op, AnyFuture]] = []
        """The priority lane: proposed before ``_pending`` (see the module docstring)."""
        self._inflight: list[_Batch] = []
        self._flush_scheduled = False
        self.failed: dict[str, int] = {"not_applied": 0, "outcome_unknown": 0, "unavailable": 0}
        """Operations that failed, by outcome (metrics: a write that was refused before it was
        proposed, one that was not applied, one whose outcome is unknown)."""

    def pending(self) -> int:
        """Operations queued or proposed and not yet answered (metrics)."""
        with self._lock:
            return len(self._pending) + sum(len(b.ops) for b in self._inflight)

    def submit(self, op: Op) -> concurrent.futures.Future[Result]:
        """Queue one operation; the future resolves to its Result or a StoreError."""
        fut: concurrent.futures.Future[Result] = concurrent.futures.Future()
        self._enqueue(op, fut)
        return fut

    def submit_async(self, op: Op) -> asyncio.Future[Result]:
        """Like ``submit``, from a running event loop; the future resolves on that loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Result] = loop.create_future()
        if not self._can_propose():
            self.failed["unavailable"] += 1
            fut.set_exception(Unavailable("this master is not in a quorum with a leader"))
            return fut
        with self._lock:
            (self._urgent if urgent.get() else self._pending).append((op, fut))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            batch = self._take_locked()
        if batch is not None:
            self._send(batch)

    def _enqueue(self, op: Op, fut: AnyFuture) -> None:
        if not self._can_propose():
            self.failed["unavailable"] += 1
            fut.set_exception(Unavailable("this master is not in a quorum with a leader"))
            return
        with self._lock:
            (self._urgent if urgent.get() else self._pending).append((op, fut))
            batch = self._take_locked()
        if batch is not None:
            self._send(batch)

    def _take_locked(self) -> _Batch | None:
        if self._urgent:
            # One command more than usual may be in flight for the priority lane, so that a
            # heartbeat does not wait for a bulk batch to commit before it is even proposed.
            if len(self._inflight) > self._max_inflight:
                return None
        elif not self._pending or len(self._inflight) >= self._max_inflight:
            return None
        chunk: list[tuple[Op, AnyFuture]] = []
        size = 0
        budget = self._max_batch_bytes
        if self._urgent:
            chunk, size = _take(self._urgent, self._max_batch, budget, 0)
            budget = min(budget, self._urgent_batch_bytes)
        if len(chunk) < self._max_batch:
            more, size = _take(self._pending, self._max_batch - len(chunk), budget, size)
            chunk.extend(more)
        batch = _Batch(
            [op for op, _ in chunk], [f for _, f in chunk], time.monotonic() + self._timeout
        )
        self._inflight.append(batch)
        return batch

    def _send(self, batch: _Batch) -> None:
        try:
            self._apply_batch(batch.ops, callback=lambda res, err: self._done(batch, res, err))
        except Exception as exc:  # pysyncobj refused to queue it
            self._done(batch, None, FAIL_REASON.QUEUE_FULL, cause=exc)

    def _done(self, batch: _Batch, results: Any, err: int, cause: Exception | None = None) -> None:
        with self._lock:
            if batch.done:
                return  # already expired by tick(); a late answer changes nothing
            batch.done = True
            self._inflight.remove(batch)
            nxt = self._take_locked()
        if err == FAIL_REASON.SUCCESS:
            if self._on_latency is not None:
                self._on_latency(time.monotonic() - batch.started, len(batch.ops))
            _settle(list(zip(batch.futures, results, strict=True)))
        else:
            exc: StoreError
            if err in _NOT_APPLIED:
                exc = NotApplied(f"write not applied: {_reason(err)}; retry")
                self.failed["not_applied"] += len(batch.ops)
            else:
                exc = OutcomeUnknown(f"write outcome unknown: {_reason(err)}")
                self.failed["outcome_unknown"] += len(batch.ops)
            if cause is not None:
                exc.__cause__ = cause
            _settle([(fut, exc) for fut in batch.futures])
        if nxt is not None:
            self._send(nxt)

    def tick(self) -> None:
        """Expire in-flight batches past their deadline (called periodically on any thread)."""
        now = time.monotonic()
        expired: list[_Batch] = []
        with self._lock:
            for batch in self._inflight:
                if batch.deadline < now:
                    batch.done = True
                    expired.append(batch)
            for batch in expired:
                self._inflight.remove(batch)
            nxt = self._take_locked() if expired else None
        for batch in expired:
            self.failed["outcome_unknown"] += len(batch.ops)
            exc = OutcomeUnknown(f"no answer from the cluster within {self._timeout:g}s")
            _settle([(fut, exc) for fut in batch.futures])
        if nxt is not None:
            self._send(nxt)

    def fail_pending(self, exc: StoreError) -> None:
        """Fail everything not yet proposed (used on shutdown)."""
        with self._lock:
            pending, self._pending = self._urgent + self._pending, []
            self._urgent = []
        _settle([(fut, exc) for _, fut in pending])


def _take(
    queue: list[tuple[Op, AnyFuture]], most: int, budget: int, size: int
) -> tuple[list[tuple[Op, AnyFuture]], int]:
    """Remove and return the head of ``queue``: at most ``most`` operations, and no more than
    ``budget`` bytes counting the ``size`` already taken (but always at least one operation
    when nothing was taken yet); also the new size."""
    count = 0
    for op, _ in queue[:most]:
        grown = size + payload_bytes(op)
        if (count or size) and grown > budget:
            break
        size = grown
        count += 1
    chunk = queue[:count]
    del queue[:count]
    return chunk, size


Outcome = Result | BaseException


def _settle(outcomes: list[tuple[AnyFuture, Outcome]]) -> None:
    """Resolve waiters from any thread: concurrent futures at once, asyncio futures with one
    callback per event loop (their loops may be closed by now: then nobody waits on them)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[AnyFuture, Outcome]]] = {}
    for fut, outcome in outcomes:
        if isinstance(fut, asyncio.Future):
            by_loop.setdefault(fut.get_loop(), []).append((fut, outcome))
        else:
            _set(fut, outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_here, items)
        except RuntimeError:
            pass  # the loop is closed


def _settle_here(items: list[tuple[AnyFuture, Outcome]]) -> None:
    for fut, outcome in items:
        _set(fut, outcome)


def _set(fut: AnyFuture, outcome: Outcome) -> None:
    if fut.done():
        return  # cancelled by its waiter, or already failed
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def _reason(err: int) -> str:
    names = {v: k for k, v in vars(FAIL_REASON).items() if k.isupper()}
    return str(names.get(err, str(err))).lower().replace("_", " ")
