"""The store's operations, typed: one class per kind of change proposed to the Raft log.

Callers build an operation (``Create(...)``), the store encodes it as a plain tuple whose first
item is a short code (``wire(op)``), and the state machine decodes it back (``decode``). The
tuples are what the Raft log and the compaction dumps hold: small to pickle, and made only of
builtins, so the restricted unpicklers (``hakube.store.transport``) need to allow no class, and
journals written before these classes existed read the same. The classes exist so that no module
spells an operation as a hand-made tuple whose positions only the state machine knows.

Results stay ``(code, revision, detail)`` tuples (``Result``): the revision is the object's
``mod_rev`` for writes (the current one on CONFLICT) and the store revision otherwise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

Labels = dict[str, str]
Fields = dict[str, str]

Op = tuple[Any, ...]
"""An operation as the Raft log carries it: ``(code, *fields)``."""

Result = tuple[str, int, Any]


class Create(NamedTuple):
    """Create an object; fails with EXISTS if it is there. ``lease`` (0: none) ties its life to
    a lease, as etcd's keys with a lease."""

    request_id: str
    kind: str
    namespace: str
    name: str
    value: bytes
    labels: Labels
    fields: Fields
    lease: int = 0


class Update(NamedTuple):
    """Replace an object if its ``mod_rev`` is ``expect_rev`` (0: whatever it is)."""

    request_id: str
    kind: str
    namespace: str
    name: str
    value: bytes
    labels: Labels
    fields: Fields
    expect_rev: int


class Delete(NamedTuple):
    """Delete an object if its ``mod_rev`` is ``expect_rev`` (0: whatever it is); the detail of
    the result is the deleted object's create revision."""

    request_id: str
    kind: str
    namespace: str
    name: str
    expect_rev: int = 0


class Barrier(NamedTuple):
    """Changes nothing; its result carries the revision at its place in the log (read index)."""


class LeaseGrant(NamedTuple):
    request_id: str
    lease_id: int
    ttl_seconds: int


class LeaseKeepalive(NamedTuple):
    """Detail: the lease's TTL."""

    lease_id: int


class LeaseRevoke(NamedTuple):
    """Detail: how many objects went with the lease."""

    lease_id: int


class LeasesExpired(NamedTuple):
    """Proposed by the leader for leases whose TTL ran out; detail as ``LeaseRevoke``."""

    lease_ids: tuple[int, ...]


class MemberSelf(NamedTuple):
    """A master registers or updates its own addresses (an empty ``api_address`` keeps the
    known one)."""

    name: str
    raft_address: str
    api_address: str


class MemberAdd(NamedTuple):
    """``hakube members add``: a new name, never a removed one."""

    name: str
    raft_address: str
    api_address: str


class MemberRemove(NamedTuple):
    """``hakube members remove``: the name becomes a tombstone."""

    name: str
    raft_address: str


class ClusterId(NamedTuple):
    """Set the cluster id; the first proposal wins, later ones read it back."""

    cluster_id: str


StoreOp = (
    Create
    | Update
    | Delete
    | Barrier
    | LeaseGrant
    | LeaseKeepalive
    | LeaseRevoke
    | LeasesExpired
    | MemberSelf
    | MemberAdd
    | MemberRemove
    | ClusterId
)

_BY_CODE: dict[str, Any] = {
    "c": Create,
    "u": Update,
    "d": Delete,
    "b": Barrier,
    "lg": LeaseGrant,
    "lk": LeaseKeepalive,
    "lr": LeaseRevoke,
    "lx": LeasesExpired,
    "ms": MemberSelf,
    "ma": MemberAdd,
    "mr": MemberRemove,
    "mc": ClusterId,
}


_CODE_OF: dict[type, str] = {cls: code for code, cls in _BY_CODE.items()}


def wire(op: StoreOp) -> Op:
    """The tuple the Raft log carries for ``op``: its code, then its fields in order."""
    return (_CODE_OF[type(op)], *op)


def decode(op: Op) -> StoreOp:
    """The typed operation of a tuple read from the log; ValueError for an unknown code."""
    cls = _BY_CODE.get(op[0]) if op else None
    if cls is None:
        raise ValueError(f"unknown store operation {op[:1]!r}")
    typed: StoreOp = cls._make(op[1:])
    return typed


def payload_bytes(op: Op) -> int:
    """About how many bytes ``op`` adds to a Raft batch: the object's bytes plus a little."""
    value = op[5] if op[0] in ("c", "u") else b""
    return len(value) + 64
