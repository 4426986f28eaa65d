"""Namespace controller: empties a terminating namespace, then lets it go.

Deleting a namespace that still holds objects only marks it (phase Terminating, finalizer
``kubernetes``; new objects are refused). This controller deletes every object in it, kind by
kind, and once a list of every kind comes back empty it removes the finalizer, which makes the
API server delete the namespace. Objects that are slow to go (pods terminating gracefully, owners
waiting on finalizers) just make it retry later.
"""

from __future__ import annotations

from typing import Any

from hakube.api import kinds
from hakube.api.v1 import core_pb2
from hakube.client import errors
from hakube.controllers.base import Controller
from hakube.controllers.manager import register
from hakube.controllers.owned import delete_exact

FINALIZER = "kubernetes"


class NamespaceNotEmpty(Exception):
    """Raised to retry: objects are still going."""


@register
class NamespaceController(Controller):
    name = "namespace"

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.get(core_pb2.Namespace)
        self.namespaces.add_handlers(
            on_add=self._changed, on_update=lambda old, new: self._changed(new)
        )

    def _changed(self, ns: core_pb2.Namespace) -> None:
        if ns.metadata.deletion_timestamp:
            self.enqueue(ns)

    def sync(self, key: Any) -> None:
        ns = self.namespaces.get(key[1])
        if ns is None or not ns.metadata.deletion_timestamp:
            return
        if FINALIZER not in ns.metadata.finalizers:
            return
        left = self._delete_contents(ns.metadata.name)
        if left:
            raise NamespaceNotEmpty(
                f'namespace "{ns.metadata.name}": {left} objects still terminating'
            )
        fresh = self.client.namespaces.get(ns.metadata.name)
        kept = [f for f in fresh.metadata.finalizers if f != FINALIZER]
        del fresh.metadata.finalizers[:]
        fresh.metadata.finalizers.extend(kept)
        try:
            self.client.namespaces.update(fresh)
        except errors.NotFound:
            return
        self.events.normal(ns, "NamespaceFinalized", "all objects deleted")

    def _delete_contents(self, namespace: str) -> int:
        """Ask for every object in ``namespace`` to go; the number still present."""
        left = 0
        for kind in kinds.KINDS:
            if not kind.namespaced:
                continue
            for obj in self.client.list(kind, namespace=namespace).items:
                left += 1
                if obj.metadata.deletion_timestamp:
                    continue
                delete_exact(self.client, obj)
        return left
