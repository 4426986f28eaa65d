"""Pod creates and deletes of the workload controllers, coalesced into Batch calls.

A ReplicaSet scaling up by hundreds, or a DaemonSet on a thousand nodes, issues its writes from
many worker threads at once; each write through the term's ``BatchWriter`` (hakube.client.batch)
leaves in a Batch call with the others in flight, instead of costing a gRPC call of its own.
Every write keeps the unary call's meaning: its own result or its own error, a uid precondition
on deletes, and the writer's fence (a controller-manager that lost its lease sends nothing
more). Without a writer (tests that build a Context by hand) each write is a unary call.
"""

from __future__ import annotations

from typing import Any

from hakube.client import errors
from hakube.client.base import M, resolve_kind
from hakube.client.batch import BatchWriter
from hakube.client.client import Client


class Writes:
    """Create and delete through ``writer`` when there is one, else through ``client``."""

    def __init__(self, client: Client, writer: BatchWriter | None) -> None:
        self.client = client
        self.writer = writer

    def create(self, obj: M) -> M:
        """The created object; raises as ``Client.create`` would."""
        if self.writer is None:
            return self.client.create(obj)
        made: M = self.writer.create(obj).result()
        return made

    def delete(self, obj: Any, *, uid: str = "", grace_period_seconds: int | None = None) -> None:
        """Delete ``obj`` (with ``uid`` as precondition); NotFound and Conflict raise as with
        ``Client.delete``, except a NotFound after an attempt that may have been applied, which
        is our own delete's success (as the unary call reads it)."""
        meta = obj.metadata
        if self.writer is None:
            self.client.delete(
                type(obj),
                meta.name,
                namespace=meta.namespace,
                uid=uid,
                grace_period_seconds=grace_period_seconds,
            )
            return
        future = self.writer.delete(
            resolve_kind(type(obj)).name,
            meta.name,
            namespace=meta.namespace,
            uid=uid,
            grace_period_seconds=grace_period_seconds,
        )
        try:
            future.result()
        except errors.NotFound as exc:
            if not exc.retried:
                raise
