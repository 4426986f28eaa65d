"""Read-modify-write with compare-and-swap: the way to change one field of a live object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hakube.client.base import KindLike, resolve_kind
from hakube.client.client import Client
from hakube.client.errors import Conflict


def modify(
    client: Client,
    kind: KindLike,
    name: str,
    change: Callable[[Any], bool],
    *,
    namespace: str | None = None,
    attempts: int = 10,
) -> Any | None:
    """Get, ``change`` in place (False: nothing to do), update with CAS; start over on
    Conflict. Returns the stored object, or None when nothing changed."""
    for _ in range(attempts):
        obj = client.get(kind, name, namespace=namespace)
        if not change(obj):
            return None
        try:
            return client.update(obj)
        except Conflict:
            continue
    plural = resolve_kind(kind).plural
    raise Conflict(f'{plural} "{name}": changed by others on every attempt; try again')
