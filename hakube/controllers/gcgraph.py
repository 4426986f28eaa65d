"""The garbage collector's ownership graph: who owns whom, by uid, from the informers.

Informer handlers (one thread per kind) call ``observe``/``forget``; the graph, under one lock,
keeps each object's owner references and the reverse edges (owner uid -> dependent uids), and
puts on the collector's queue exactly the items a change can affect:

- an object whose owner references changed (or that appears with some): ``("delete", uid)``,
  to check whether its owners still exist;
- an owner being deleted in the foreground: ``("delete", owner)``, which deletes dependents
  and waits for them; an owner being deleted with the orphan finalizer: ``("orphan", owner)``;
- an object that disappears: every dependent (its owner may now be gone) and every owner
  waiting in the foreground for it.

Reverse edges are kept for owners the graph has not seen (yet), so nothing is lost when a
dependent's informer is ahead of its owner's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from hakube.api.v1 import meta_pb2
from hakube.client.base import resolve_kind
from hakube.client.workqueue import WorkQueue

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
_ABSENT_CAP = 50_000


@dataclass
class Node:
    kind: str
    namespace: str
    name: str
    uid: str
    owners: list[meta_pb2.OwnerReference]
    deleting: bool
    foreground: bool
    orphaning: bool

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{where}"


def node_of(obj: Any) -> Node:
    meta = obj.metadata
    deleting = bool(meta.deletion_timestamp)
    return Node(
        kind=resolve_kind(type(obj)).name,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        owners=list(meta.owner_references),
        deleting=deleting,
        foreground=deleting and FOREGROUND in meta.finalizers,
        orphaning=deleting and ORPHAN in meta.finalizers,
    )


class Graph:
    def __init__(self, queue: WorkQueue[Any]) -> None:
        self.queue = queue
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}
        self._absent: set[str] = set()

    def get(self, uid: str) -> Node | None:
        with self._lock:
            return self._nodes.get(uid)

    def dependents(self, uid: str) -> set[str]:
        with self._lock:
            return set(self._dependents.get(uid, ()))

    def known_absent(self, uid: str) -> bool:
        with self._lock:
            return uid in self._absent

    def mark_absent(self, uid: str) -> None:
        with self._lock:
            if len(self._absent) >= _ABSENT_CAP:
                self._absent.clear()
            self._absent.add(uid)

    def observe(self, obj: Any) -> None:
        new = node_of(obj)
        with self._lock:
            old = self._nodes.get(new.uid)
            self._nodes[new.uid] = new
            old_owners = {r.uid for r in old.owners} if old else set()
            new_owners = {r.uid for r in new.owners}
            for uid in old_owners - new_owners:
                self._unlink(uid, new.uid)
            for uid in new_owners - old_owners:
                self._dependents.setdefault(uid, set()).add(new.uid)
            owners_changed = old is None or [r.SerializeToString() for r in old.owners] != [
                r.SerializeToString() for r in new.owners
            ]
        if new.owners and owners_changed and not new.deleting:
            self.queue.add(("delete", new.uid))
        if new.foreground:
            self.queue.add(("delete", new.uid))
        if new.orphaning:
            self.queue.add(("orphan", new.uid))
        for uid in old_owners - new_owners:
            self._poke_waiting_owner(uid)

    def forget(self, obj: Any) -> None:
        uid = obj.metadata.uid
        with self._lock:
            node = self._nodes.pop(uid, None)
            self._absent.add(uid)
            deps = set(self._dependents.get(uid, ()))
            owners = [r.uid for r in node.owners] if node else []
            for o in owners:
                self._unlink(o, uid)
        for d in deps:
            self.queue.add(("delete", d))
        for o in owners:
            self._poke_waiting_owner(o)

    def _unlink(self, owner: str, dependent: str) -> None:
        deps = self._dependents.get(owner)
        if deps is not None:
            deps.discard(dependent)
            if not deps:
                del self._dependents[owner]

    def _poke_waiting_owner(self, uid: str) -> None:
        owner = self.get(uid)
        if owner is not None and owner.foreground:
            self.queue.add(("delete", uid))
