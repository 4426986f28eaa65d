"""Watch fan-out: store events to every matching watch stream, in revision order.

The store calls ``publish`` on the Raft thread after each applied batch; the events are handed to
the asyncio loop, which filters them per watcher and queues pre-encoded ``WatchEvent`` bytes
(encoded once per event, shared by all watchers). Registration happens on the loop thread under
the store lock, so a watcher sees history up to revision R and live events strictly after R,
never a gap or a duplicate.

Watchers whose label selector requires some ``key=value`` are indexed by that pair, so an event is
tested only against the watchers that could match it (its old and new labels' pairs) and those
without such a requirement: a hundred node agents each watching its own pods cost one lookup per
event, not a hundred selector evaluations.

A watcher that falls more than ``max_queue`` events behind is closed with RESOURCE_EXHAUSTED;
the client resumes from the last revision it saw (the history usually still has it).

What a new watcher must see first (the current objects, or the history after its revision) is
taken under the store lock as references only -- records are immutable once applied -- and
encoded one message at a time as the stream sends it. The lock is held for a copy of references
(the Raft apply thread waits microseconds per thousand objects, not for an encode of the whole
kind), and a watch starting from revision 0 costs a list of references plus the message being
sent, not an encoded copy of the kind: gRPC's flow control stops the encoding while the client
does not read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from hakube.api import failures
from hakube.api.kinds import Kind
from hakube.api.labels import Matcher
from hakube.apiserver.encryption import Transformer
from hakube.apiserver.errors import ApiError, Gone, Unavailable
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.wire import object_bytes, watch_event_bytes
from hakube.store import fsm as store
from hakube.store.fsm import Event, OutOfRange, Record, StoreFSM


class TooSlow(ApiError):
    """The watcher could not keep up; it must watch again from its last revision."""

    failure = failures.TOO_MANY_REQUESTS


class Watcher:
    __slots__ = (
        "kind",
        "namespace",
        "label_match",
        "field_match",
        "queue",
        "last_rev",
        "closed_with",
        "initial",
    )

    def __init__(
        self,
        kind: Kind,
        namespace: str | None,
        label_match: Matcher | None,
        field_match: Matcher | None,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.label_match = label_match
        self.field_match = field_match
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_rev = 0
        self.closed_with: ApiError | None = None
        self.initial: Iterator[bytes] | None = None
        """What the watcher sees before its queue: encoded lazily (see the module docstring)."""

    def matches(self, rec: Record | None) -> bool:
        if rec is None:
            return False
        if self.label_match is not None and not self.label_match(rec.labels):
            return False
        return self.field_match is None or self.field_match(rec.fields)

    def translate(self, ev: Event) -> str | None:
        """The event type this watcher sees for a store event, or None to skip it."""
        if self.namespace is not None and ev.namespace != self.namespace:
            return None
        if ev.type == store.ADDED:
            return store.ADDED if self.matches(ev.new) else None
        if ev.type == store.DELETED:
            return store.DELETED if self.matches(ev.prev) else None
        was, now = self.matches(ev.prev), self.matches(ev.new)
        if was and now:
            return store.MODIFIED
        if now:
            return store.ADDED
        if was:
            return store.DELETED
        return None


def _index_pair(w: Watcher) -> tuple[str, str] | None:
    pair = getattr(w.label_match, "equal", None)
    return pair if isinstance(pair, tuple) else None


def encode_event(
    kind: Kind, type_: str, ev: Event, transformer: Transformer | None = None
) -> bytes:
    """The WatchEvent for a store event; values of encrypted kinds are decrypted (Internal if
    this master cannot)."""
    rec = ev.new if ev.new is not None else ev.prev
    assert rec is not None
    value = rec.value
    if transformer is not None:
        value = transformer.open(kind.name, ev.namespace, ev.name, value)
    return watch_event_bytes(type_, object_bytes(kind, value, ev.rev), ev.rev)


class WatchHub:
    """Owns the watchers of one master. All methods except ``publish`` run on the loop."""

    def __init__(
        self,
        fsm: StoreFSM,
        metrics: MasterMetrics,
        *,
        max_queue: int = 50000,
        transformer: Transformer | None = None,
    ) -> None:
        self.fsm = fsm
        self.transformer = transformer or Transformer()
        self.metrics = metrics
        self.max_queue = max_queue
        self.loop: asyncio.AbstractEventLoop | None = None
        self._by_kind: dict[str, set[Watcher]] = {}
        self._by_label: dict[str, dict[tuple[str, str], set[Watcher]]] = {}
        """Per kind: watchers whose label selector requires this key=value pair."""
        self._unindexed: dict[str, set[Watcher]] = {}
        """Per kind: watchers that must be tested against every event."""
        self.refusing: str | None = None
        """Set while watches are refused (see ``refuse``)."""
        metrics.watch_backlog.set_function(self.backlog)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fsm.listener = self.publish
        self.fsm.replaced = self.replaced

    def replaced(self, before: int, after: int) -> None:
        """Store callback (Raft thread): the state was replaced by a snapshot from the leader,
        so the changes between ``before`` and ``after`` were never published. Every stream ends
        (after the events queued ahead of this call); its client resumes from the last revision
        it received and gets those changes from the installed history, or Gone and a relist
        when the history no longer reaches back. Found by a fault run: a follower paused past
        the leader's log compaction installed a snapshot and its watchers silently skipped 38
        changes."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            reason = (
                f"this master replaced its state with the leader's snapshot (revision {before} "
                f"to {after}); watch again from the last resourceVersion you received"
            )
            try:
                loop.call_soon_threadsafe(self.close_all, reason)
            except RuntimeError:
                pass  # loop shutting down

    def publish(self, events: list[Event], revision: int) -> None:
        """Store listener (Raft thread): hand the batch to the loop."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._dispatch, events, revision)
            except RuntimeError:
                pass  # loop shutting down

    def _candidates(self, ev: Event) -> list[Watcher]:
        """Watchers that may see ``ev``: unindexed ones, and indexed ones whose key=value pair
        the old or new labels carry."""
        out = list(self._unindexed.get(ev.kind, ()))
        index = self._by_label.get(ev.kind)
        if index:
            for rec in (ev.prev, ev.new):
                if rec is None:
                    continue
                for pair in rec.labels.items():
                    found = index.get(pair)
                    if found:
                        out.extend(found)
            if ev.prev is not None and ev.new is not None:
                out = list(set(out))  # a watcher may be listed under old and new labels
        return out

    def _dispatch(self, events: list[Event], revision: int) -> None:
        encoded: dict[tuple[int, str], bytes] = {}
        for ev in events:
            if not self._by_kind.get(ev.kind):
                continue
            for w in self._candidates(ev):
                if ev.rev <= w.last_rev or w.closed_with is not None:
                    continue
                type_ = w.translate(ev)
                if type_ is None:
                    continue
                data = encoded.get((ev.rev, type_))
                if data is None:
                    try:
                        data = encode_event(w.kind, type_, ev, self.transformer)
                    except ApiError as exc:
                        self._close(w, exc)
                        continue
                    encoded[(ev.rev, type_)] = data
                self._put(w, data)
        for watchers in self._by_kind.values():
            for w in watchers:
                if w.last_rev < revision:
                    w.last_rev = revision

    def backlog(self) -> int:
        """Events queued for the slowest watcher (metrics; read at scrape time, so a racing
        change of the sets is retried rather than locked against)."""
        for _ in range(3):
            try:
                return max(
                    (w.queue.qsize() for ws in list(self._by_kind.values()) for w in list(ws)),
                    default=0,
                )
            except RuntimeError:
                continue
        return 0

    def _put(self, w: Watcher, data: bytes) -> None:
        if w.queue.qsize() >= self.max_queue:
            self.metrics.watch_too_slow.inc()
            self._close(
                w,
                TooSlow(
                    f"watch fell more than {self.max_queue} events behind at revision "
                    f"{w.last_rev}; watch again from the last resourceVersion you received"
                ),
            )
            return
        w.queue.put_nowait(data)

    @staticmethod
    def _close(w: Watcher, exc: ApiError) -> None:
        w.closed_with = exc
        w.queue.put_nowait(None)

    def subscribe(
        self,
        kind: Kind,
        namespace: str | None,
        label_match: Matcher | None,
        field_match: Matcher | None,
        from_rev: int,
    ) -> Watcher:
        """Register a watcher and queue what it must see first: the current objects as ADDED
        (from_rev 0) or the history after from_rev (Gone if that is compacted)."""
        if self.refusing is not None:
            raise Unavailable(self.refusing)
        w = Watcher(kind, namespace, label_match, field_match)
        if from_rev == 0:
            # The store lock is held inside for a copy of references; sorting is outside it.
            rev, items = self.fsm.snapshot(kind.name, namespace)
            w.initial = self._added(w, items)
        else:
            with self.fsm.lock:
                rev = self.fsm.revision
                try:
                    events = [
                        (type_, ev)
                        for ev in self.fsm.events_since(from_rev, (kind.name,))
                        if (type_ := w.translate(ev)) is not None
                    ]
                except OutOfRange as exc:
                    raise Gone(
                        f"too old resource version: {from_rev} (oldest kept: "
                        f"{exc.compacted}); list again and watch from its "
                        "resourceVersion"
                    ) from exc
            w.initial = (encode_event(kind, t, ev, self.transformer) for t, ev in events)
        # A client resuming on a replica that has not yet applied from_rev has already seen
        # everything up to it: never send those events again.
        w.last_rev = max(rev, from_rev)
        self._by_kind.setdefault(kind.name, set()).add(w)
        pair = _index_pair(w)
        if pair is None:
            self._unindexed.setdefault(kind.name, set()).add(w)
        else:
            self._by_label.setdefault(kind.name, {}).setdefault(pair, set()).add(w)
        self.metrics.watch_streams.inc()
        return w

    def _added(self, w: Watcher, items: list[tuple[tuple[str, str], Record]]) -> Iterator[bytes]:
        """The current objects as ADDED events, encoded as they are sent."""
        kind = w.kind
        for (ns, name), rec in items:
            if w.matches(rec):
                value = self.transformer.open(kind.name, ns, name, rec.value)
                yield watch_event_bytes(
                    store.ADDED, object_bytes(kind, value, rec.mod_rev), rec.mod_rev
                )

    def unsubscribe(self, w: Watcher) -> None:
        watchers = self._by_kind.get(w.kind.name)
        if watchers is not None and w in watchers:
            watchers.discard(w)
            pair = _index_pair(w)
            if pair is None:
                self._unindexed.get(w.kind.name, set()).discard(w)
            else:
                index = self._by_label.get(w.kind.name, {})
                group = index.get(pair)
                if group is not None:
                    group.discard(w)
                    if not group:
                        del index[pair]
            self.metrics.watch_streams.dec()

    async def stream(self, w: Watcher, *, bookmarks: bool, interval: float) -> AsyncIterator[bytes]:
        """Yield the watcher's encoded events (and BOOKMARKs when idle)."""
        sent = self.metrics.watch_events.labels(w.kind.name)
        try:
            if w.initial is not None:
                for first in w.initial:
                    if w.closed_with is not None:
                        raise w.closed_with
                    sent.inc()
                    yield first
                w.initial = None
            while True:
                if bookmarks:
                    try:
                        data = await asyncio.wait_for(w.queue.get(), timeout=interval)
                    except TimeoutError:
                        # ``last_rev`` already covers every event queued for this watcher, so a
                        # bookmark is true only once the queue is empty. The timeout and a
                        # dispatch can land in one loop turn (a master resuming from a pause, a
                        # busy loop): then an event waits in the queue, and a bookmark sent
                        # ahead of it would make the client drop it as already seen.
                        if w.queue.empty():
                            yield watch_event_bytes(
                                "BOOKMARK", object_bytes(w.kind, b"", w.last_rev), w.last_rev
                            )
                            continue
                        data = w.queue.get_nowait()
                else:
                    data = await w.queue.get()
                if data is None:
                    assert w.closed_with is not None
                    raise w.closed_with
                sent.inc()
                yield data
        finally:
            self.unsubscribe(w)

    def close_all(self, reason: str = "master is shutting down; watch another one") -> None:
        for watchers in self._by_kind.values():
            for w in watchers:
                w.queue.put_nowait(None)
                if w.closed_with is None:
                    w.closed_with = Unavailable(reason)

    def refuse(self, reason: str | None) -> None:
        """While ``reason`` is set, end every stream and refuse new ones with UNAVAILABLE.

        A master cut off from the majority would otherwise keep its streams open and silent
        (bookmarks included), and its watchers would never learn to move to a master that
        still sees changes.
        """
        if reason is not None and self.refusing is None:
            self.close_all(reason)
        self.refusing = reason
