"""The lease service: Grant, KeepAlive and Revoke of the store's TTL leases.

The store already keeps leases (``hakube.store.fsm`` ops "lg", "lk", "lr" and the leader's "lx"
expiry, see ``hakube.store.leases``); this exposes them the way etcd does, so that objects can
be tied to the liveness of their writer (``CreateRequest.lease``): a node agent's or a
controller's records vanish, with ordinary DELETED watch events, once it stops renewing.

Lease ids are chosen here, not in the replicated apply path (which must be deterministic). With
a request id the id derives from it, so a Grant retried after a lost answer names the same lease
and the store's dedupe returns the first answer instead of granting a second lease.
"""

from __future__ import annotations

import hashlib
import random

from hakube.api.v1 import api_pb2
from hakube.apiserver.errors import AlreadyExists, Invalid, NotFound
from hakube.apiserver.objects import ObjectAPI
from hakube.store import fsm as store
from hakube.store import ops

MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
"""Upper bound on a TTL (ten years): larger values are surely a unit mistake."""
_ID_MASK = (1 << 63) - 1


def lease_id_for(request_id: str) -> int:
    """A positive 63-bit lease id: derived from the request id when there is one."""
    if request_id:
        digest = hashlib.sha256(b"lease/" + request_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") & _ID_MASK or 1
    return random.getrandbits(63) or 1


class LeaseAPI:
    """Implements LeaseService on top of the object API's proposer."""

    def __init__(self, objects: ObjectAPI) -> None:
        self.objects = objects

    async def grant(self, req: api_pb2.LeaseGrantRequest) -> api_pb2.LeaseGrantResponse:
        if not 1 <= req.ttl_seconds <= MAX_TTL_SECONDS:
            raise Invalid(
                f"lease: ttlSeconds {req.ttl_seconds} must be between 1 and {MAX_TTL_SECONDS}"
            )
        if req.id < 0:
            raise Invalid(f"lease: id {req.id} must be positive (or 0 to let the server choose)")
        lease_id = req.id or lease_id_for(req.request_id)
        code, _, ttl = await self.objects.propose(
            ops.LeaseGrant(req.request_id, lease_id, req.ttl_seconds)
        )
        if code == store.EXISTS:
            raise AlreadyExists(f"lease {lease_id} already exists")
        return api_pb2.LeaseGrantResponse(id=lease_id, ttl_seconds=ttl)

    async def keep_alive(
        self, req: api_pb2.LeaseKeepAliveRequest
    ) -> api_pb2.LeaseKeepAliveResponse:
        code, _, ttl = await self.objects.propose(ops.LeaseKeepalive(req.id))
        if code == store.LEASE_NOT_FOUND:
            raise NotFound(f"lease {req.id} not found (expired or revoked)")
        return api_pb2.LeaseKeepAliveResponse(id=req.id, ttl_seconds=ttl)

    async def revoke(self, req: api_pb2.LeaseRevokeRequest) -> api_pb2.LeaseRevokeResponse:
        code, _, deleted = await self.objects.propose(ops.LeaseRevoke(req.id))
        if code == store.LEASE_NOT_FOUND:
            raise NotFound(f"lease {req.id} not found (expired or revoked)")
        return api_pb2.LeaseRevokeResponse(deleted=deleted)
