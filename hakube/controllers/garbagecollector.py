"""Garbage collector: cascading deletion along ownerReferences.

The graph (gcgraph.py) is built from informers over every kind that can own or be owned. Work
items are ``("delete", uid)`` -- decide whether an object must go -- and ``("orphan", uid)``.

- **Background**: an object none of whose owners exists any more is deleted. "Does not exist"
  is never decided from the cache alone: an owner the graph has not seen is looked up on the
  API server (by uid), because this informer may simply be behind another one -- a ReplicaSet
  whose Deployment is not cached yet must not be collected.
- **Foreground**: an owner being deleted with the ``foregroundDeletion`` finalizer first has
  its dependents deleted (those that themselves have dependents in foreground as well); once no
  dependent with ``blockOwnerDeletion`` is left, the finalizer is removed and the owner goes.
- **Orphan**: an owner being deleted with the ``orphan`` finalizer has its ownerReference
  stripped from every dependent, then the finalizer is removed.

An object that still has a live owner keeps it; references to owners that are gone (or waiting
for their dependents) are removed from it instead of deleting it.
"""

from __future__ import annotations

import logging
from typing import Any

from hakube.api import kinds
from hakube.client import errors
from hakube.controllers.base import Context, Controller
from hakube.controllers.gcgraph import FOREGROUND, ORPHAN, Graph, Node
from hakube.controllers.manager import register

log = logging.getLogger("hakube.controllers.gc")

SKIPPED_KINDS = ("Event",)
"""Never owners nor owned in practice, and by far the most numerous: not watched."""


RECHECK = 5.0
"""Seconds before an owner waiting in the foreground is looked at again even without news (each
dependent that goes re-queues it anyway)."""


@register
class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.workers = ctx.settings.concurrent_gc_syncs
        self.graph = Graph(self.queue)

    def setup(self) -> None:
        self.caches: dict[str, Any] = {}
        for kind in kinds.KINDS:
            if kind.name in SKIPPED_KINDS:
                continue
            inf = self.ctx.informers.get(kind)
            self.caches[kind.name] = inf
            inf.add_handlers(
                on_add=self.graph.observe,
                on_update=lambda old, new: self.graph.observe(new),
                on_delete=self.graph.forget,
            )

    # -- reconcile ----------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        what, uid = key
        node = self.graph.get(uid)
        if node is None:
            return
        obj = self._current(node)
        if obj is None:
            return
        if what == "orphan":
            self._orphan_dependents(node, obj)
        elif obj.metadata.deletion_timestamp:
            if FOREGROUND in obj.metadata.finalizers:
                self._foreground(node, obj)
        else:
            self._collect(node, obj)

    def _current(self, node: Node) -> Any | None:
        inf = self.caches.get(node.kind)
        if inf is None:
            return None
        obj = inf.get(node.name, node.namespace)
        if obj is None or obj.metadata.uid != node.uid:
            return None
        return obj

    def _foreground(self, node: Node, obj: Any) -> None:
        blocking = 0
        for dep_uid in self.graph.dependents(node.uid):
            dep = self.graph.get(dep_uid)
            if dep is None:
                continue
            if any(r.uid == node.uid and r.block_owner_deletion for r in dep.owners):
                blocking += 1
            self.queue.add(("delete", dep_uid))
        if blocking:
            log.debug("%s: %d blocking dependents still present", node, blocking)
            self.queue.add_after(("delete", node.uid), RECHECK)
            return
        self._remove_finalizer(node, FOREGROUND)

    def _collect(self, node: Node, obj: Any) -> None:
        if not node.owners:
            return
        states: dict[str, list[Any]] = {"solid": [], "dangling": [], "waiting": []}
        for ref in node.owners:
            states[self._owner_state(node, ref)].append(ref)
        solid, dangling, waiting = states["solid"], states["dangling"], states["waiting"]
        if solid:
            if dangling or waiting:
                drop = {r.uid for r in dangling + waiting}
                self._strip_owners(node, drop)
            return
        policy = "Foreground" if waiting and self.graph.dependents(node.uid) else "Background"
        log.info("deleting %s (owners gone or being deleted; %s)", node, policy)
        try:
            self.client.delete(
                node.kind,
                node.name,
                namespace=node.namespace or None,
                uid=node.uid,
                propagation_policy=policy,
            )
        except (errors.NotFound, errors.Conflict):
            pass

    def _owner_state(self, node: Node, ref: Any) -> str:
        """ "solid" (exists, not waiting for dependents), "waiting" (foreground deletion) or
        "dangling" (gone, or the name now belongs to another uid)."""
        owner = self.graph.get(ref.uid)
        if owner is not None:
            return "waiting" if owner.foreground else "solid"
        kind = kinds.lookup(ref.kind)
        if kind is None:
            return "solid"  # an owner kind we do not know: never collect on a guess
        ns = node.namespace if kind.namespaced else ""
        if self.graph.known_absent(ref.uid):
            return "dangling"
        try:
            live = self.client.get(kind, ref.name, namespace=ns or None)
        except errors.NotFound:
            self.graph.mark_absent(ref.uid)
            return "dangling"
        if live.metadata.uid != ref.uid:
            self.graph.mark_absent(ref.uid)
            return "dangling"
        fg = bool(live.metadata.deletion_timestamp) and FOREGROUND in live.metadata.finalizers
        return "waiting" if fg else "solid"

    def _orphan_dependents(self, node: Node, obj: Any) -> None:
        if ORPHAN not in obj.metadata.finalizers or not obj.metadata.deletion_timestamp:
            return
        for dep_uid in list(self.graph.dependents(node.uid)):
            dep = self.graph.get(dep_uid)
            if dep is not None:
                self._strip_owners(dep, {node.uid})
        self._remove_finalizer(node, ORPHAN)

    # -- writes -------------------------------------------------------------------------------

    def _strip_owners(self, node: Node, uids: set[str]) -> None:
        def change(obj: Any) -> bool:
            keep = [r for r in obj.metadata.owner_references if r.uid not in uids]
            if len(keep) == len(obj.metadata.owner_references):
                return False
            del obj.metadata.owner_references[:]
            obj.metadata.owner_references.extend(keep)
            return True

        self._modify(node, change)

    def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        def change(obj: Any) -> bool:
            if finalizer not in obj.metadata.finalizers:
                return False
            keep = [f for f in obj.metadata.finalizers if f != finalizer]
            del obj.metadata.finalizers[:]
            obj.metadata.finalizers.extend(keep)
            return True

        self._modify(node, change)

    def _modify(self, node: Node, change: Any) -> None:
        """Read fresh, change, write with compare-and-swap; Conflict propagates (retry)."""
        try:
            obj = self.client.get(node.kind, node.name, namespace=node.namespace or None)
            if obj.metadata.uid != node.uid or not change(obj):
                return
            self.client.update(obj)
        except errors.NotFound:
            return
