"""What the client's parts share, so none of them needs ``client.py``: kinds by any name, the
list and delete results, the client's settings, and ``ObjectClient``, the verbs a watch, an
informer, ``apply`` and the typed resources call.

``Client`` (client.py) implements ``ObjectClient`` and builds on watch.py, informer.py,
apply.py and resources.py; they build on this module only. So the imports run one way and
``Client.watch``/``informer``/``apply`` return real types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from hakube.api import kinds
from hakube.api.kinds import Kind
from hakube.client import errors
from hakube.client.transport import RetryPolicy, Transport

M = TypeVar("M", bound=Message)
KindLike = Kind | str | type[Message]


def resolve_kind(kind: KindLike) -> Kind:
    """A Kind from a Kind, a message class, or a name/plural/short name ("po", "Pod")."""
    if isinstance(kind, Kind):
        return kind
    if isinstance(kind, str):
        found = kinds.lookup(kind)
        if found is None:
            raise errors.Invalid(f'unknown kind "{kind}"')
        return found
    found = kinds.BY_MESSAGE.get(kind)
    if found is None:
        raise errors.Invalid(f"{kind.__name__} is not an API kind")
    return found


def list_namespace(kind: Kind, namespace: str | None) -> str:
    """The namespace a list or watch is confined to; "" means all (or a cluster kind)."""
    return namespace if kind.namespaced and namespace else ""


@dataclass
class ObjectList(Generic[M]):
    """The result of a list: the items and the revision to watch from."""

    items: list[M]
    resource_version: str
    kind: Kind | None = None


@dataclass
class DeleteResult(Generic[M]):
    """What a Delete did. ``deleted`` is False when the object is only marked (finalizers or a
    grace period pending); ``object`` is None when a retried Delete found its own earlier
    attempt had already removed the object."""

    object: M | None
    deleted: bool


@dataclass
class ClientSettings:
    """Knobs of a Client (all optional)."""

    namespace: str = "default"
    """Namespace used when a namespaced call does not name one."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    """Deadline and backoff of every unary call."""
    watch_idle_timeout: float = 20.0
    """A watch stream that delivers nothing (not even a bookmark, sent every 5 s) for this long
    is presumed dead and reopened on another master."""


class ObjectClient(Protocol):
    """The unary verbs and settings of a client (``hakube.client.Client`` is the one)."""

    settings: ClientSettings
    transport: Transport

    def get(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str | None = ...,
        serializable: bool = ...,
        timeout: float | None = ...,
    ) -> Any: ...

    def list(
        self,
        kind: KindLike,
        *,
        namespace: str | None = ...,
        label_selector: str = ...,
        field_selector: str = ...,
        limit: int = ...,
        page_size: int = ...,
        serializable: bool = ...,
        timeout: float | None = ...,
    ) -> ObjectList[Any]: ...

    def create(
        self, obj: M, *, request_id: str = ..., dry_run: bool = ..., timeout: float | None = ...
    ) -> M: ...

    def update(
        self, obj: M, *, request_id: str = ..., dry_run: bool = ..., timeout: float | None = ...
    ) -> M: ...

    def update_status(
        self, obj: M, *, request_id: str = ..., dry_run: bool = ..., timeout: float | None = ...
    ) -> M: ...

    def delete(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str | None = ...,
        grace_period_seconds: int | None = ...,
        propagation_policy: str = ...,
        uid: str = ...,
        resource_version: str = ...,
        request_id: str = ...,
        dry_run: bool = ...,
        timeout: float | None = ...,
    ) -> DeleteResult[Any]: ...
