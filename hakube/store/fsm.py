"""The store's state machine: objects, revisions, watch history, request dedupe and TTL leases.

Why it looks the way it does:

* Every replicated method runs on pysyncobj's tick thread, on every master, in log order. It must
  be deterministic: no clock, no randomness, no uuid. Callers decide those before proposing.
* Objects are opaque bytes (serialized protobuf without ``metadata.resourceVersion``), keyed by
  ``(kind, namespace, name)``, with the labels and selectable fields the API server extracted. The
  store never parses protobuf, so it stays small and fast; the API server injects the revision
  into the bytes on the way out.
* Records are immutable. An event keeps the record before and after a change, so the state at an
  older revision can be rebuilt from the current state and the history (used for consistent
  paginated lists), and watches can filter on old and new labels.
* Readers on other threads take ``lock``; apply holds it while mutating.

Threading contract: ``apply_batch`` (and the deserialization of a dump) run on the Raft thread.
Read methods may run on any thread and take the lock. ``listener`` is called on the Raft thread
after each applied batch and must not block.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pysyncobj import SyncObjConsumer, replicated

from hakube.store import ops

Labels = dict[str, str]
Fields = dict[str, str]
ObjKey = tuple[str, str]  # (namespace, name) inside one kind

# Result codes of one operation.
OK = "ok"
NOT_FOUND = "not_found"
EXISTS = "exists"
CONFLICT = "conflict"
LEASE_NOT_FOUND = "lease_not_found"
REMOVED = "removed"

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


class Record:
    """One stored version of an object. Immutable once made."""

    __slots__ = ("value", "create_rev", "mod_rev", "labels", "fields", "lease")

    def __init__(
        self,
        value: bytes,
        create_rev: int,
        mod_rev: int,
        labels: Labels,
        fields: Fields,
        lease: int = 0,
    ) -> None:
        self.value = value
        self.create_rev = create_rev
        self.mod_rev = mod_rev
        self.labels = labels
        self.fields = fields
        self.lease = lease

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.value, self.create_rev, self.mod_rev, self.labels, self.fields, self.lease)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (self.value, self.create_rev, self.mod_rev, self.labels, self.fields, self.lease) = state


class Event:
    """A change at one revision: ``new`` is None for DELETED, ``prev`` is None for ADDED."""

    __slots__ = ("rev", "type", "kind", "namespace", "name", "new", "prev")

    def __init__(
        self,
        rev: int,
        type_: str,
        kind: str,
        namespace: str,
        name: str,
        new: Record | None,
        prev: Record | None,
    ) -> None:
        self.rev = rev
        self.type = type_
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.new = new
        self.prev = prev

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.rev, self.type, self.kind, self.namespace, self.name, self.new, self.prev)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (self.rev, self.type, self.kind, self.namespace, self.name, self.new, self.prev) = state


# Operations and results: ``hakube.store.ops`` (typed classes; the log carries plain tuples).
Op = ops.Op
Result = ops.Result


class StoreFSM(SyncObjConsumer):  # type: ignore[misc]  # pysyncobj has no types
    """Replicated state. See the module docstring for the contract."""

    def __init__(self, *, history_size: int = 20000, dedupe_size: int = 50000) -> None:
        super().__init__()
        # Local, not replicated: set before the replicated fields are created.
        self.lock = threading.RLock()
        self.listener: Callable[[list[Event], int], None] | None = None
        self.lease_touched: Callable[[int], None] | None = None
        self.replaced: Callable[[int, int], None] | None = None
        """Called on the Raft thread with (old revision, new revision) after the whole state was
        replaced from a dump: a snapshot the leader sent to this lagging follower. No events are
        published for the revisions it skipped, so whoever follows changes incrementally (the
        watch hub) must start over from the new state."""
        self._history_size = history_size
        self._dedupe_size = dedupe_size
        self._reset()

    def _reset(self) -> None:
        self.revision = 0
        self.objects: dict[str, dict[ObjKey, Record]] = {}
        self.history: collections.deque[Event] = collections.deque()
        self.compacted_rev = 0
        self.requests: collections.OrderedDict[str, Result] = collections.OrderedDict()
        self.leases: dict[int, tuple[int, set[tuple[str, str, str]]]] = {}
        self.size_bytes = 0
        # The member registry (names and API addresses beside pysyncobj's address-only Raft
        # configuration) and tombstones of removed names, which may never be used again.
        self.members: dict[str, tuple[str, str]] = {}
        self.removed: dict[str, str] = {}
        self.cluster_id = ""

    # -- persistence (pysyncobj dump) ---------------------------------------------------------

    _STATE = (
        "revision",
        "objects",
        "history",
        "compacted_rev",
        "requests",
        "leases",
        "size_bytes",
        "members",
        "removed",
        "cluster_id",
    )

    def _serialize(self) -> dict[str, Any]:
        # Called on the Raft thread; pysyncobj forks and pickles the returned references in the
        # child, so this returns live structures without copying them.
        return {k: getattr(self, k) for k in self._STATE}

    def _deserialize(self, data: dict[str, Any]) -> None:
        with self.lock:
            before = self.revision
            self._reset()  # fields missing from dumps of older versions keep their defaults
            for k in self._STATE:
                if k in data:
                    setattr(self, k, data[k])
        if self.replaced is not None:
            self.replaced(before, self.revision)

    # -- the one replicated entry point -----------------------------------------------------------

    @replicated  # type: ignore[untyped-decorator]
    def apply_batch(self, ops: list[Op]) -> list[Result]:
        """Apply a group-committed batch of operations, in order, atomically for readers."""
        events: list[Event] = []
        with self.lock:
            results = [self._apply_one(op, events) for op in ops]
            self._record(events)
        if events and self.listener is not None:
            self.listener(events, self.revision)
        return results

    def _apply_one(self, op: Op, events: list[Event]) -> Result:
        typed = ops.decode(op)
        match typed:
            case ops.Barrier():
                return (OK, self.revision, None)
            case ops.LeaseKeepalive(lease_id):
                lease = self.leases.get(lease_id)
                if lease is None:
                    return (LEASE_NOT_FOUND, self.revision, None)
                if self.lease_touched is not None:
                    self.lease_touched(lease_id)
                return (OK, self.revision, lease[0])
            case ops.LeaseRevoke(lease_id):
                return self._drop_leases((lease_id,), events)
            case ops.LeasesExpired(lease_ids):
                return self._drop_leases(lease_ids, events)
            case ops.MemberSelf() | ops.MemberAdd() | ops.MemberRemove() | ops.ClusterId():
                return self._member_op(typed)
            case ops.Create() | ops.Update() | ops.Delete() | ops.LeaseGrant():
                return self._deduplicated(typed, events)
        raise AssertionError(typed)  # decode returns only the classes above

    def _drop_leases(self, ids: tuple[int, ...], events: list[Event]) -> Result:
        found, deleted = False, 0
        for lease_id in ids:
            lease = self.leases.pop(lease_id, None)
            if lease is None:
                continue
            found = True
            for kind, ns, name in sorted(lease[1]):
                deleted += self._delete(kind, ns, name, 0, events)[0] == OK
        return (OK if found else LEASE_NOT_FOUND, self.revision, deleted)

    def _deduplicated(
        self, op: ops.Create | ops.Update | ops.Delete | ops.LeaseGrant, events: list[Event]
    ) -> Result:
        """Apply a write once per request id: a retried request gets the first answer."""
        request_id = op.request_id
        if request_id:
            seen = self.requests.get(request_id)
            if seen is not None:
                return seen
        match op:
            case ops.Create(_, kind, ns, name, value, labels, fields, lease):
                result = self._create(kind, ns, name, value, labels, fields, lease, events=events)
            case ops.Update(_, kind, ns, name, value, labels, fields, expect_rev):
                result = self._update(
                    kind, ns, name, value, labels, fields, expect_rev, events=events
                )
            case ops.Delete(_, kind, ns, name, expect_rev):
                result = self._delete(kind, ns, name, expect_rev, events)
            case ops.LeaseGrant(_, lease_id, ttl):
                if lease_id in self.leases:
                    result = (EXISTS, self.revision, None)
                else:
                    self.leases[lease_id] = (ttl, set())
                    if self.lease_touched is not None:
                        self.lease_touched(lease_id)
                    result = (OK, self.revision, ttl)
        if request_id:
            self.requests[request_id] = result
            if len(self.requests) > self._dedupe_size:
                self.requests.popitem(last=False)
        return result

    def _create(
        self,
        kind: str,
        ns: str,
        name: str,
        value: bytes,
        labels: Labels,
        fields: Fields,
        lease_id: int,
        *,
        events: list[Event],
    ) -> Result:
        bucket = self.objects.setdefault(kind, {})
        current = bucket.get((ns, name))
        if current is not None:
            return (EXISTS, current.mod_rev, None)
        if lease_id and lease_id not in self.leases:
            return (LEASE_NOT_FOUND, self.revision, None)
        self.revision += 1
        rec = Record(value, self.revision, self.revision, labels, fields, lease_id)
        bucket[(ns, name)] = rec
        if lease_id:
            self.leases[lease_id][1].add((kind, ns, name))
        self.size_bytes += len(value)
        events.append(Event(self.revision, ADDED, kind, ns, name, rec, None))
        return (OK, self.revision, rec.create_rev)

    def _replaceable(self, kind: str, ns: str, name: str, expect_rev: int) -> Record | Result:
        """The stored object an update or delete may replace, or the failed result: NOT_FOUND,
        or CONFLICT (with the current ``mod_rev``) when ``expect_rev`` (0: any) is not it."""
        current = self.objects.get(kind, {}).get((ns, name))
        if current is None:
            return (NOT_FOUND, self.revision, None)
        if expect_rev and current.mod_rev != expect_rev:
            return (CONFLICT, current.mod_rev, None)
        return current

    def _update(
        self,
        kind: str,
        ns: str,
        name: str,
        value: bytes,
        labels: Labels,
        fields: Fields,
        expect_rev: int,
        *,
        events: list[Event],
    ) -> Result:
        current = self._replaceable(kind, ns, name, expect_rev)
        if not isinstance(current, Record):
            return current
        self.revision += 1
        rec = Record(value, current.create_rev, self.revision, labels, fields, current.lease)
        self.objects[kind][(ns, name)] = rec
        self.size_bytes += len(value) - len(current.value)
        events.append(Event(self.revision, MODIFIED, kind, ns, name, rec, current))
        return (OK, self.revision, rec.create_rev)

    def _delete(
        self, kind: str, ns: str, name: str, expect_rev: int, events: list[Event]
    ) -> Result:
        current = self._replaceable(kind, ns, name, expect_rev)
        if not isinstance(current, Record):
            return current
        self.revision += 1
        del self.objects[kind][(ns, name)]
        if current.lease and current.lease in self.leases:
            self.leases[current.lease][1].discard((kind, ns, name))
        self.size_bytes -= len(current.value)
        events.append(Event(self.revision, DELETED, kind, ns, name, None, current))
        return (OK, self.revision, current.create_rev)

    def _member_op(
        self, op: ops.MemberSelf | ops.MemberAdd | ops.MemberRemove | ops.ClusterId
    ) -> Result:
        if isinstance(op, ops.ClusterId):
            if not self.cluster_id:
                self.cluster_id = op.cluster_id
            return (OK, self.revision, self.cluster_id)
        name = op.name
        if name in self.removed:
            return (REMOVED, self.revision, self.removed[name])
        if isinstance(op, ops.MemberRemove):
            entry = self.members.pop(name, None)
            self.removed[name] = entry[0] if entry is not None else op.raft_address
            return (OK, self.revision, self.removed[name])
        raft, api = op.raft_address, op.api_address
        for other, (other_raft, _) in self.members.items():
            if other != name and other_raft == raft:
                return (EXISTS, self.revision, other)
        current = self.members.get(name)
        if isinstance(op, ops.MemberAdd) and current is not None and current[0] != raft:
            return (EXISTS, self.revision, name)
        if isinstance(op, ops.MemberSelf) and current is not None and not api:
            api = current[1]
        self.members[name] = (raft, api)
        return (OK, self.revision, None)

    def _record(self, events: list[Event]) -> None:
        history = self.history
        history.extend(events)
        while len(history) > self._history_size:
            self.compacted_rev = history.popleft().rev

    # -- snapshots (any thread) ----------------------------------------------------------------

    def capture(self) -> dict[str, Any]:
        """The durable state at the current revision, for a snapshot. Records are immutable, so
        copying the containers under the lock is enough; the caller serializes outside it."""
        with self.lock:
            return {
                "revision": self.revision,
                "objects": {kind: dict(bucket) for kind, bucket in self.objects.items()},
                "leases": {lid: (ttl, set(keys)) for lid, (ttl, keys) in self.leases.items()},
                "members": dict(self.members),
                "removed": dict(self.removed),
                "cluster_id": self.cluster_id,
            }

    def load_captured(self, state: dict[str, Any]) -> None:
        """Replace everything with a captured state (restore). Watch history starts empty at
        the snapshot's revision, so watchers resuming from older revisions relist."""
        with self.lock:
            self._reset()
            self.revision = state["revision"]
            self.compacted_rev = state["revision"]
            self.objects = {kind: dict(bucket) for kind, bucket in state["objects"].items()}
            self.leases = {lid: (ttl, set(keys)) for lid, (ttl, keys) in state["leases"].items()}
            self.members = dict(state["members"])
            self.removed = dict(state["removed"])
            self.cluster_id = state["cluster_id"]
            self.size_bytes = sum(len(r.value) for b in self.objects.values() for r in b.values())

    # -- reads (any thread) ---------------------------------------------------------------------

    def get(self, kind: str, ns: str, name: str) -> Record | None:
        """The current record, or None."""
        return self.objects.get(kind, {}).get((ns, name))

    def count(self, kind: str) -> int:
        """Number of objects of a kind."""
        return len(self.objects.get(kind, {}))

    def kinds(self) -> list[str]:
        """Kinds that have (or had) objects."""
        with self.lock:
            return list(self.objects)

    def snapshot(
        self, kind: str, ns: str | None, at_rev: int = 0
    ) -> tuple[int, list[tuple[ObjKey, Record]]]:
        """Objects of ``kind`` (in ``ns``, or all namespaces for None) at revision ``at_rev``
        (0: now), sorted by key. Raises OutOfRange when that revision is no longer in history."""
        with self.lock:
            items = dict(self.objects.get(kind, {}))
            if at_rev and at_rev < self.revision:
                if at_rev < self.compacted_rev:
                    raise OutOfRange(at_rev, self.compacted_rev)
                for ev in reversed(self.history):
                    if ev.rev <= at_rev:
                        break
                    if ev.kind != kind:
                        continue
                    key = (ev.namespace, ev.name)
                    if ev.prev is None:
                        items.pop(key, None)
                    else:
                        items[key] = ev.prev
            rev = at_rev or self.revision
        if ns is not None:
            selected = [(k, r) for k, r in items.items() if k[0] == ns]
        else:
            selected = list(items.items())
        selected.sort(key=lambda kr: kr[0])
        return rev, selected

    def events_since(self, rev: int, kinds: Iterable[str] | None = None) -> Iterator[Event]:
        """History events after ``rev`` (caller holds ``lock``). Raises OutOfRange if compacted."""
        if rev < self.compacted_rev:
            raise OutOfRange(rev, self.compacted_rev)
        wanted = set(kinds) if kinds is not None else None
        # Walk from the end: recent revisions are what watchers ask for.
        tail: list[Event] = []
        for ev in reversed(self.history):
            if ev.rev <= rev:
                break
            if wanted is None or ev.kind in wanted:
                tail.append(ev)
        return reversed(tail)


class OutOfRange(Exception):
    """A revision older than the kept history was asked for; the client must relist."""

    def __init__(self, rev: int, compacted: int) -> None:
        super().__init__(f"revision {rev} is older than the oldest kept revision {compacted}")
        self.rev = rev
        self.compacted = compacted
