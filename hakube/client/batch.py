"""Many writes in flight from one program, coalesced into ObjectService.Batch calls.

A program with hundreds of concurrent writes (a controller's workers, a loader) pays gRPC's
per-call cost once per write with unary calls; ``BatchWriter`` sends the writes queued by any
number of threads together, up to ``max_items`` per call, so that cost is paid once per batch
(hakube/apiserver/batch.py says what the server does with each item: exactly what the unary call
would). Each write gets a ``concurrent.futures.Future`` that resolves to its own result or its
own error, as the unary call would have raised it; the warnings the master found for each item
(accepted or refused) go to the writer's ``on_warning``, the Client's handler by default.

Failover and retries go through the shared ``Transport`` like every call: a batch whose call
fails for a reason a retry can fix is sent again (to the next master on UNAVAILABLE) with the
same request ids, so a write that was applied before the failure is answered, not applied
twice. When the batch's deadline passes without an answer, each write whose outcome is unknown
fails with ``OutcomeUnknown`` naming its own request id — the caller learns exactly which writes
are indefinite. An item refused by priority and fairness (RESOURCE_EXHAUSTED with a hint) was not
run: it is queued again after the hint, until its deadline.

Fencing: a leader-elected component passes ``fence`` (a callable that is true once its term has
ended); every batch checks it just before it leaves, and a fenced writer fails its queued writes
with ``Unavailable`` instead of sending them, so a component that lost its lease stops writing
at the same point a unary write would (the caller's own check before it queues).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from hakube.api import kinds
from hakube.api.v1 import api_pb2
from hakube.client import apiwarnings, errors
from hakube.client.base import resolve_kind
from hakube.client.transport import Stubs, Transport

MAX_ITEMS = 256
"""The server's limit on items per call (hakube.apiserver.batch.MAX_ITEMS)."""


@dataclass
class _Pending:
    item: api_pb2.BatchItem
    what: str
    request_id: str
    deadline: float
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    not_before: float = 0.0
    attempts: int = 0
    maybe_applied: bool = False
    """An earlier attempt ended without a definite answer: it may have been applied."""


class BatchWriter:
    """Coalesces the writes of many threads into Batch calls (see the module docstring).

    One sender thread drains the queue: while a batch is in flight, new writes accumulate and
    leave together in the next one, so the batch size follows the load with no timer. Close it
    (or use it as a context manager) to stop the thread; pending writes fail with Unavailable.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        namespace: str = "default",
        max_items: int = 128,
        timeout: float | None = None,
        fence: Callable[[], bool] | None = None,
        on_warning: apiwarnings.Handler | None = None,
    ) -> None:
        """``on_warning`` gets the warnings of the items (each distinct text once per Batch
        call); by default the transport's handler, i.e. the Client's ``on_warning``."""
        if not 1 <= max_items <= MAX_ITEMS:
            raise ValueError(f"max_items: {max_items} must be between 1 and {MAX_ITEMS}")
        self.transport = transport
        self.namespace = namespace
        self.max_items = max_items
        self.timeout = timeout if timeout is not None else transport.policy.timeout
        self.fence = fence
        self.on_warning = on_warning or transport.on_warning
        """True once the writes may no longer be sent (a leader-elected caller's ended term)."""
        self.calls = 0
        """Batch calls sent (tests, metrics)."""
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._gate = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    # -- what callers queue ----------------------------------------------------------------------

    def create(self, obj: Any, *, request_id: str = "") -> concurrent.futures.Future[Any]:
        """Queue a create of ``obj``; the future gives the created object."""
        msg = self._with_namespace(obj)
        rid = request_id or uuid.uuid4().hex
        req = api_pb2.CreateRequest(object=kinds.wrap(msg), request_id=rid)
        return self._submit(api_pb2.BatchItem(create=req), "create", msg, rid)

    def update(
        self, obj: Any, *, status: bool = False, request_id: str = ""
    ) -> concurrent.futures.Future[Any]:
        """Queue an update (``status``: of the status subresource); the future gives the
        updated object. A resourceVersion in ``obj`` is a precondition, as with the unary call."""
        msg = self._with_namespace(obj)
        rid = request_id or uuid.uuid4().hex
        req = api_pb2.UpdateRequest(object=kinds.wrap(msg), request_id=rid)
        item = api_pb2.BatchItem(update_status=req) if status else api_pb2.BatchItem(update=req)
        return self._submit(item, "update", msg, rid)

    def delete(
        self,
        kind: str,
        name: str,
        *,
        namespace: str = "",
        uid: str = "",
        grace_period_seconds: int | None = None,
        request_id: str = "",
    ) -> concurrent.futures.Future[Any]:
        """Queue a delete (``uid``: only of that object, Conflict if the name now holds
        another); the future gives the DeleteResponse."""
        rid = request_id or uuid.uuid4().hex
        req = api_pb2.DeleteRequest(
            kind=kind,
            namespace=namespace or self.namespace,
            name=name,
            request_id=rid,
            preconditions=api_pb2.Preconditions(uid=uid),
        )
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        pending = _Pending(
            api_pb2.BatchItem(delete=req),
            f"delete {kind}/{name}",
            rid,
            time.monotonic() + self.timeout,
        )
        return self._enqueue(pending)

    def bind(
        self, name: str, node_name: str, *, namespace: str = "", uid: str = ""
    ) -> concurrent.futures.Future[Any]:
        """Queue a Bind of pod ``name`` to ``node_name`` (a compare-and-swap on the pod, as the
        unary call: Conflict when it is on another node); the future gives the bound pod. A
        Conflict that follows an attempt which may have been applied has ``retried`` set, as
        ``Client.bind`` reads it."""
        req = api_pb2.BindRequest(
            namespace=namespace or self.namespace, name=name, node_name=node_name, uid=uid
        )
        pending = _Pending(
            api_pb2.BatchItem(bind=req),
            f"bind pods/{name} to node {node_name}",
            uuid.uuid4().hex,
            time.monotonic() + self.timeout,
        )
        return self._enqueue(pending)

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Writes queued inside this block leave in one call (up to ``max_items``): for a
        caller that has a group of writes at hand rather than many threads."""
        with self._gate:
            yield

    # -- machinery -------------------------------------------------------------------------------

    def _with_namespace(self, obj: Any) -> Any:
        msg = type(obj)()
        msg.CopyFrom(obj)
        kind = resolve_kind(type(msg))
        if kind.namespaced and not msg.metadata.namespace:
            msg.metadata.namespace = self.namespace
        return msg

    def _submit(
        self, item: api_pb2.BatchItem, verb: str, msg: Any, rid: str
    ) -> concurrent.futures.Future[Any]:
        what = f"{verb} {resolve_kind(type(msg)).plural}/{msg.metadata.name}"
        return self._enqueue(_Pending(item, what, rid, time.monotonic() + self.timeout))

    def _enqueue(self, pending: _Pending) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise errors.Unavailable(f"{pending.what}: the batch writer is closed")
        self._queue.put(pending)
        return pending.future

    def _run(self) -> None:
        held: list[_Pending] = []  # refused by flow control, waiting for their hint
        while True:
            batch: list[_Pending] = []
            now = time.monotonic()
            ready = [p for p in held if p.not_before <= now]
            held = [p for p in held if p.not_before > now]
            batch.extend(ready[: self.max_items])
            held.extend(ready[self.max_items :])
            if not batch:
                wait = min((p.not_before for p in held), default=now + 0.5) - now
                try:
                    first = self._queue.get(timeout=max(0.001, wait))
                except queue.Empty:
                    continue
                if first is None:
                    break
                batch.append(first)
            with self._gate:  # held by together(): wait for the rest of the group
                pass
            while len(batch) < self.max_items:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._closed = True
                    break
                batch.append(nxt)
            held.extend(self._send(batch))
            if self._closed and self._queue.empty():
                break
        for p in held:
            p.future.set_exception(errors.Unavailable(f"{p.what}: the batch writer was closed"))

    def _send(self, batch: list[_Pending]) -> list[_Pending]:
        """One Batch call (with the transport's retries and failover); resolves each future;
        returns the items refused by flow control, to send again after their hint."""
        if self.fence is not None and self.fence():
            for p in batch:
                p.future.set_exception(
                    errors.Unavailable(f"{p.what}: not sent, the writer's term has ended")
                )
            return []
        req = api_pb2.BatchRequest(items=[p.item for p in batch])
        deadline = min(p.deadline for p in batch)

        def attempt(stubs: Stubs, timeout: float) -> api_pb2.BatchResponse:
            return stubs.objects.Batch(req, timeout=timeout)  # type: ignore[no-any-return]

        self.calls += 1
        try:
            resp = self.transport.call(
                attempt,
                what=f"batch of {len(batch)} writes",
                timeout=max(0.0, deadline - time.monotonic()),
                request_id=batch[0].request_id,
            )
        except errors.HakubeError as exc:
            for p in batch:
                p.future.set_exception(_item_error(p, exc))
            return []
        apiwarnings.deliver(self.on_warning, (w for r in resp.results for w in r.warnings))
        again: list[_Pending] = []
        for p, result in zip(batch, resp.results, strict=True):
            code = _CODES.get(result.code, grpc.StatusCode.UNKNOWN)
            if code == grpc.StatusCode.OK:
                field_ = p.item.WhichOneof("call")
                p.future.set_result(
                    result.deleted if field_ == "delete" else kinds.unwrap(result.object)[1]
                )
            elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and result.retry_after_ms:
                hint = result.retry_after_ms / 1000
                if time.monotonic() + hint < p.deadline:
                    p.not_before = time.monotonic() + hint
                    again.append(p)
                else:
                    p.future.set_exception(
                        errors.TooManyRequests(f"{p.what}: {result.message}", retry_after=hint)
                    )
            elif code in _RETRY_ITEM:
                # The master could not finish this one (e.g. the leader changed under it): the
                # same request id makes a retry safe, as for a unary write.
                p.maybe_applied = True
                p.attempts += 1
                pause = self.transport.policy.pause(p.attempts)
                if time.monotonic() + pause < p.deadline:
                    p.not_before = time.monotonic() + pause
                    again.append(p)
                else:
                    p.future.set_exception(_unknown(p, result.message))
            else:
                err = errors.from_code(code, f"{p.what}: {result.message}")
                err.retried = p.maybe_applied
                p.future.set_exception(err)
        return again

    def close(self) -> None:
        """Send what is queued, then stop the sender thread (idempotent)."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(self.timeout + 5)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CODES = {c.value[0]: c for c in grpc.StatusCode}
_RETRY_ITEM = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def _unknown(p: _Pending, why: str, endpoints: tuple[str, ...] = ()) -> errors.OutcomeUnknown:
    return errors.OutcomeUnknown(
        f"{p.what}: {why}; the write may have been applied (request id {p.request_id})",
        request_id=p.request_id,
        endpoints=endpoints,
    )


def _item_error(p: _Pending, exc: errors.HakubeError) -> errors.HakubeError:
    """The batch call's failure as this item's: an unknown outcome names the item's own id."""
    if isinstance(exc, errors.OutcomeUnknown) or (
        p.maybe_applied and isinstance(exc, errors.Unavailable)
    ):
        return _unknown(p, exc.message.split(": ", 1)[-1], exc.endpoints)
    err = type(exc)(f"{p.what}: {exc.message}")
    err.code = exc.code
    return err
