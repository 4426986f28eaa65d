"""Claiming: which objects an owner controls, adopting matching orphans and releasing strays.

An object belongs to the owner its controller ownerReference names (by uid). A matching object
without a controller is adopted -- but only after a fresh read shows the owner still exists
with the same uid and is not being deleted, so an owner being deleted (or one that was deleted
and recreated under the same name) never grabs pods its cache still shows. An owned object whose
labels no longer match is released. Both writes are compare-and-swap on the object's
resourceVersion: if the object changed meanwhile, it is left alone and the next sync decides
with fresh data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hakube.api.owners import controller_ref
from hakube.client import errors
from hakube.client.client import Client
from hakube.controllers.podutil import owner_ref_to

log = logging.getLogger("hakube.controllers.claim")


class Claimer:
    """Claims objects for one owner during one sync."""

    def __init__(
        self,
        client: Client,
        owner: Any,
        *,
        kind: str,
        api_version: str,
        match: Callable[[dict[str, str]], bool],
    ) -> None:
        self.client = client
        self.owner = owner
        self.kind = kind
        self.api_version = api_version
        self.match = match
        self._can_adopt: bool | None = None

    def claim(self, objects: list[Any]) -> list[Any]:
        """The objects this owner controls after adopting and releasing."""
        owned = []
        uid = self.owner.metadata.uid
        deleting = bool(self.owner.metadata.deletion_timestamp)
        for obj in objects:
            ref = controller_ref(obj.metadata)
            matches = self.match(dict(obj.metadata.labels))
            if ref is not None:
                if ref.uid != uid:
                    continue
                if matches or deleting:
                    owned.append(obj)
                    continue
                self._write(obj, release=True)
                continue
            if deleting or not matches or obj.metadata.deletion_timestamp:
                continue
            if not self.can_adopt():
                continue
            adopted = self._write(obj, release=False)
            if adopted is not None:
                owned.append(adopted)
        return owned

    def can_adopt(self) -> bool:
        if self._can_adopt is None:
            meta = self.owner.metadata
            try:
                fresh = self.client.get(self.kind, meta.name, namespace=meta.namespace)
                self._can_adopt = (
                    fresh.metadata.uid == meta.uid and not fresh.metadata.deletion_timestamp
                )
            except errors.NotFound:
                self._can_adopt = False
        return self._can_adopt

    def _write(self, obj: Any, *, release: bool) -> Any | None:
        copy = type(obj)()
        copy.CopyFrom(obj)
        refs = [r for r in copy.metadata.owner_references if r.uid != self.owner.metadata.uid]
        if not release:
            refs.append(owner_ref_to(self.owner, self.kind, self.api_version))
        del copy.metadata.owner_references[:]
        copy.metadata.owner_references.extend(refs)
        what = "release" if release else "adopt"
        try:
            return self.client.update(copy)
        except (errors.Conflict, errors.NotFound) as exc:
            log.debug("%s %s: %s", what, obj.metadata.name, exc)
            return None
        except errors.Invalid as exc:
            log.warning("%s %s: %s", what, obj.metadata.name, exc)
            return None
