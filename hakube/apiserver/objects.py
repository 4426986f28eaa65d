"""The object service: Create, Get, Update, UpdateStatus, Delete, List, Bind.

Writes are computed here (uid, timestamps, generation, defaults) and proposed to the store as
compare-and-swap operations against the revision that was read, so the replicated apply path stays
deterministic and a concurrent writer can never be overwritten silently. Updates without a
resourceVersion precondition retry on conflict (after a read barrier), as Kubernetes'
GuaranteedUpdate does; with a precondition they fail with ABORTED.

Reads are linearizable by default: a barrier operation goes through the Raft log (riding in the
same group-committed batches as writes), and the local replica is read once it has applied it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import DecodeError, Message

from hakube.api import kinds as kinds_mod
from hakube.api.conditions import set_condition
from hakube.api.kinds import Kind
from hakube.api.labels import (
    Matcher,
    SelectorError,
    matcher,
    parse_fields,
    parse_labels,
)
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import api_pb2
from hakube.apiserver import errors as api_errors
from hakube.apiserver import serviceaccounts
from hakube.apiserver.admission import PodSecurity
from hakube.apiserver.encryption import ENCRYPTABLE, Transformer
from hakube.apiserver.errors import AlreadyExists, Conflict, Forbidden, Gone, Invalid, NotFound
from hakube.apiserver.nodeports import NodePorts
from hakube.apiserver.validation import default_and_validate
from hakube.apiserver.wire import list_response_bytes, object_bytes
from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.errors import StoreError
from hakube.store.fsm import OutOfRange, Record, StoreFSM
from hakube.store.proposer import Proposer

MAX_OBJECT_BYTES = 1536 * 1024
"""Objects larger than this (serialized) are refused with RESOURCE_EXHAUSTED, as etcd's 1.5 MiB."""
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


_last_stamp: tuple[int, str] = (-1, "")


def now_rfc3339(t: float) -> str:
    """RFC 3339 at one-second resolution; formatted once per second (every create asks)."""
    global _last_stamp
    sec = int(t)
    if _last_stamp[0] != sec:
        _last_stamp = (sec, rfc3339(sec))
    return _last_stamp[1]


def kind_for(word: str) -> Kind:
    kind = kinds_mod.lookup(word)
    if kind is None:
        raise Invalid(f'unknown kind "{word}"')
    return kind


def _parse(kind: Kind, value: bytes, rev: int) -> Any:
    msg: Any = kind.message()
    msg.ParseFromString(value)
    msg.metadata.resource_version = str(rev)
    return msg


class ObjectAPI:
    """Implements the object service on top of one master's store replica."""

    def __init__(
        self,
        fsm: StoreFSM,
        proposer: Proposer,
        *,
        clock: Callable[[], float],
        new_uid: Callable[[], str] | None = None,
        quota_bytes: int = 0,
        pod_security: PodSecurity | None = None,
        transformer: Transformer | None = None,
    ) -> None:
        """``quota_bytes``: the store's size limit (0: none), see ``_check_quota``."""
        self.fsm = fsm
        self.pod_security = pod_security or PodSecurity(fsm)
        self.quota_bytes = quota_bytes
        self._quota_refused = 0
        """The growth of the last write refused for the quota (0: none since one fitted)."""
        self.transformer = transformer or Transformer()
        """Seals values of encrypted kinds before they are proposed, opens them on reads."""
        self.proposer = proposer
        self.clock = clock
        self.new_uid = new_uid or (lambda: str(uuid.uuid4()))
        # The real proposer settles asyncio futures in one loop callback per batch; a proposer
        # with only ``submit`` (tests) is wrapped per operation.
        self._submit_async: Callable[[store.Op], Awaitable[store.Result]] = getattr(
            proposer, "submit_async", None
        ) or (lambda op: asyncio.wrap_future(proposer.submit(op)))

        self._ns_terminating: dict[int, tuple[Record, bool]] = {}
        service = kind_for("Service")
        self.node_ports = NodePorts(
            fsm, lambda ns, name, rec: _parse(service, self.plain(service, ns, name, rec), 0)
        )

    # -- plumbing -----------------------------------------------------------------------------

    async def propose(self, op: ops.StoreOp) -> store.Result:
        try:
            return await self._submit_async(ops.wire(op))
        except StoreError as exc:
            raise api_errors.from_store(exc) from exc

    async def barrier(self) -> int:
        """Wait until this replica has applied everything committed before now."""
        return (await self.propose(ops.Barrier()))[1]

    def plain(self, kind: Kind, ns: str, name: str, rec: Record) -> bytes:
        """A record's value as the client sees it (decrypted); Internal if it cannot be."""
        if kind.name not in ENCRYPTABLE:
            return rec.value
        return self.transformer.open(kind.name, ns, name, rec.value)

    def _out(self, kind: Kind, ns: str, name: str, rec: Record) -> bytes:
        return object_bytes(kind, self.plain(kind, ns, name, rec), rec.mod_rev)

    def _seal(self, kind: Kind, ns: str, name: str, value: bytes) -> bytes:
        return self.transformer.write(kind.name, ns, name, value)

    def _response(self, kind: Kind, ns: str, name: str, built: Message, rev: int) -> bytes:
        rec = self.fsm.get(kind.name, ns, name)
        if rec is not None and rec.mod_rev == rev:
            return self._out(kind, ns, name, rec)
        return object_bytes(kind, built.SerializeToString(), rev)

    @staticmethod
    def _encode(kind: Kind, msg: Any) -> bytes:
        msg.metadata.resource_version = ""
        value: bytes = msg.SerializeToString(deterministic=True)
        if len(value) > MAX_OBJECT_BYTES:
            raise api_errors.TooLarge(
                f'{kind.name} "{msg.metadata.name}" is too large: {len(value)} bytes, the limit '
                f"is {MAX_OBJECT_BYTES} bytes"
            )
        return value

    def _check_quota(self, kind: Kind, name: str, growth: int) -> None:
        """Over the quota the store only shrinks, as etcd's space alarm: creates and growing
        updates fail with RESOURCE_EXHAUSTED; deletes, shrinking updates (finalizers removed)
        and Lease renewals (leader election, node heartbeats) still go through, so the cluster
        keeps its leaders while someone deletes."""
        if not self.quota_bytes or growth <= 0 or kind.name == "Lease":
            return
        fits = self.fsm.size_bytes + growth <= self.quota_bytes
        self._quota_refused = 0 if fits else growth
        if not fits:
            raise api_errors.TooLarge(
                f'{kind.plural} "{name}": the store is over its quota ({self.fsm.size_bytes} of '
                f"{self.quota_bytes} bytes); delete objects to free space (--quota-bytes)"
            )

    @property
    def quota_alarm(self) -> bool:
        """Raised by a write refused for the quota; cleared by the next write that fits, or once
        deletes have made room for the refused one."""
        if self._quota_refused and self.fsm.size_bytes + self._quota_refused <= self.quota_bytes:
            self._quota_refused = 0
        return self._quota_refused > 0

    def _index(self, kind: Kind, msg: Any) -> tuple[dict[str, str], dict[str, str]]:
        return dict(msg.metadata.labels), kinds_mod.selectable_fields(kind, msg)

    async def _check_namespace(self, kind: Kind, ns: str) -> None:
        if not kind.namespaced:
            return
        rec = self.fsm.get("Namespace", "", ns)
        if rec is None:
            await self.barrier()
            rec = self.fsm.get("Namespace", "", ns)
        if rec is None:
            raise NotFound(f'namespaces "{ns}" not found')
        if self._terminating(rec):
            raise Forbidden(
                f'{kind.name} cannot be created in namespace "{ns}" because it is being terminated'
            )

    def _terminating(self, rec: Record) -> bool:
        """Whether a stored Namespace is being deleted. Records are immutable, so the answer is
        kept for the record object last seen per namespace (every create asks)."""
        key = id(rec)
        cached = self._ns_terminating.get(key)
        if cached is not None and cached[0] is rec:
            return cached[1]
        # Namespaces are never encrypted (encryption.ENCRYPTABLE): the stored bytes are plain.
        terminating = bool(
            _parse(
                kinds_mod.BY_NAME["Namespace"], rec.value, rec.mod_rev
            ).metadata.deletion_timestamp
        )
        if len(self._ns_terminating) > 1024:
            self._ns_terminating.clear()
        self._ns_terminating[key] = (rec, terminating)
        return terminating

    def _already_applied(self, request_id: str) -> bool:
        """Whether an attempt of this request id was applied (after a lost answer)."""
        if not request_id:
            return False
        for attempt in range(10):
            seen = self.fsm.requests.get(f"{request_id}/{attempt}")
            if seen is not None and seen[0] == store.OK:
                return True
        return False

    # -- create -------------------------------------------------------------------------------

    async def create(self, req: api_pb2.CreateRequest) -> bytes:
        kind, msg = _unwrap(req.object)
        meta = msg.metadata
        if kind.namespaced and not meta.namespace:
            meta.namespace = "default"
        if not meta.name and meta.generate_name:
            # With a request id the suffix derives from it, so a retried create names the same
            # object (and the store's dedupe answers for it) instead of inventing a new one.
            rnd = random.Random(req.request_id) if req.request_id else random
            meta.name = meta.generate_name + "".join(rnd.choices(_NAME_CHARS, k=5))
        for f in ("uid", "resource_version", "creation_timestamp", "deletion_timestamp"):
            meta.ClearField(f)
        meta.ClearField("deletion_grace_period_seconds")
        meta.generation = 1
        msg.kind = kind.name
        msg.api_version = kind.api_version
        uid = self.new_uid()
        if kind.name == "Job":
            _job_selector(msg, uid)
        default_and_validate(kind, msg)
        if kind.name == "Service":
            self.node_ports.assign(msg, None, seed=req.request_id)
        await self._check_namespace(kind, meta.namespace)
        if kind.name == "Pod":
            serviceaccounts.admit_create(self.fsm, msg, seed=req.request_id)
        self.pod_security.admit(kind, msg)
        meta.uid = uid
        meta.creation_timestamp = now_rfc3339(self.clock())
        value = self._encode(kind, msg)
        self._check_quota(kind, meta.name, len(value))
        if req.dry_run:
            return object_bytes(kind, value, 0)
        labels, fields = self._index(kind, msg)
        if req.lease < 0:
            raise Invalid(f"lease: id {req.lease} must be positive (or 0 for none)")
        sealed = self._seal(kind, meta.namespace, meta.name, value)
        code, rev, _ = await self.propose(
            ops.Create(
                req.request_id,
                kind.name,
                meta.namespace,
                meta.name,
                sealed,
                labels,
                fields,
                req.lease,
            )
        )
        if code == store.EXISTS:
            raise AlreadyExists(f'{kind.plural} "{meta.name}" already exists')
        if code == store.LEASE_NOT_FOUND:
            raise NotFound(
                f'{kind.plural} "{meta.name}": lease {req.lease} not found (expired or revoked)'
            )
        return self._response(kind, meta.namespace, meta.name, msg, rev)

    # -- get / list ---------------------------------------------------------------------------

    async def get(self, req: api_pb2.GetRequest) -> bytes:
        kind = kind_for(req.kind)
        ns = _namespace(kind, req.namespace)
        if not req.serializable:
            await self.barrier()
        rec = self.fsm.get(kind.name, ns, req.name)
        if rec is None:
            raise NotFound(f'{kind.plural} "{req.name}" not found')
        return self._out(kind, ns, req.name, rec)

    async def list(self, req: api_pb2.ListRequest) -> bytes:
        kind = kind_for(req.kind)
        ns = req.namespace if kind.namespaced and req.namespace else None
        label_match, field_match = compile_selectors(kind, req.label_selector, req.field_selector)
        if req.limit < 0:
            raise Invalid("limit must not be negative")
        at_rev, after = 0, None
        token = getattr(req, "continue")
        if token:
            at_rev, after = _decode_continue(
                token, kind, ns, req.label_selector, req.field_selector
            )
        elif not req.serializable:
            await self.barrier()
        try:
            rev, items = self.fsm.snapshot(kind.name, ns, at_rev)
        except OutOfRange as exc:
            raise Gone(f"the continue token is too old ({exc}); list again from the start") from exc
        out: list[bytes] = []
        sealed = kind.name in ENCRYPTABLE
        cont, remaining = "", None
        last: store.ObjKey | None = None
        for i, (key, rec) in enumerate(items):
            if after is not None and key <= after:
                continue
            if not _matches(rec, label_match, field_match):
                continue
            if req.limit and len(out) >= req.limit:
                remaining = sum(1 for _, r in items[i:] if _matches(r, label_match, field_match))
                assert last is not None
                cont = _encode_continue(rev, kind, ns, req.label_selector, req.field_selector, last)
                break
            # Kinds that are never encrypted skip the call (lists of 30k pods).
            out.append(
                self._out(kind, key[0], key[1], rec)
                if sealed
                else object_bytes(kind, rec.value, rec.mod_rev)
            )
            last = key
        return list_response_bytes(out, rev, cont, remaining)

    # -- update -------------------------------------------------------------------------------

    async def update(self, req: api_pb2.UpdateRequest, *, status: bool) -> bytes:
        kind, msg = _unwrap(req.object)
        ns = _namespace(kind, msg.metadata.namespace)
        msg.metadata.namespace = ns
        if status and not kind.has_status:
            raise Invalid(f"{kind.name} has no status")

        def mutate(old: Any) -> Any:
            if kind.name == "Pod" and not status:
                serviceaccounts.keep_on_update(old, msg)
            new = _merge_update(kind, old, msg, status=status)
            if not status:
                self.pod_security.admit(kind, new, old)
            if kind.name == "Service" and not status:
                self.node_ports.assign(new, old)
                if new.spec == old.spec:  # node ports kept: not a spec change after all
                    new.metadata.generation = old.metadata.generation
            return new

        return await self.read_modify_write(
            kind,
            ns,
            msg.metadata.name,
            mutate,
            rv=msg.metadata.resource_version,
            request_id=req.request_id,
            dry_run=req.dry_run,
            validated=not status,
            status_update=status,
        )

    async def read_modify_write(
        self,
        kind: Kind,
        ns: str,
        name: str,
        mutate: Callable[[Any], Any],
        *,
        rv: str = "",
        uid: str = "",
        request_id: str = "",
        dry_run: bool = False,
        validated: bool = False,
        status_update: bool = False,
    ) -> bytes:
        """Read the current object, apply ``mutate`` (returns the new object, or None for no
        change), and write it back with CAS; retry on conflict unless ``rv`` pins a version.
        ``validated``: ``mutate`` already defaulted and validated its result (spec updates do, to
        compare specs as stored), so it is not done twice on the hot path. ``status_update``:
        only the status changes (validation leaves the stored spec's problems out)."""
        for attempt in range(10):
            if attempt:
                await self.barrier()
            rec = self.fsm.get(kind.name, ns, name)
            if rec is None:
                if attempt == 0:
                    continue
                raise NotFound(f'{kind.plural} "{name}" not found')
            if rv and rv != str(rec.mod_rev):
                if attempt == 0:
                    continue  # this replica may be behind the version the client saw
                if self._already_applied(request_id):
                    # A retry of a write that was applied before its answer was lost.
                    return self._out(kind, ns, name, rec)
                raise _stale(kind, name)
            plain = self.plain(kind, ns, name, rec)
            old = _parse(kind, plain, rec.mod_rev)
            if uid and old.metadata.uid != uid:
                raise Conflict(
                    f'{kind.plural} "{name}": precondition failed: uid {uid} does '
                    f"not match the object's uid {old.metadata.uid}"
                )
            new = mutate(old)
            if new is None:
                return object_bytes(kind, plain, rec.mod_rev)
            if not validated:
                default_and_validate(kind, new, status_update=status_update)
            value = self._encode(kind, new)
            if value == plain and self.transformer.current(kind.name, rec.value):
                # Unchanged, and sealed with the current key (else the write re-encrypts it).
                return object_bytes(kind, plain, rec.mod_rev)
            self._check_quota(kind, name, len(value) - len(plain))
            if dry_run:
                return object_bytes(kind, value, rec.mod_rev)
            rid = f"{request_id}/{attempt}" if request_id else ""
            finalize = (
                bool(new.metadata.deletion_timestamp)
                and not new.metadata.finalizers
                and not (kind.name == "Pod" and new.metadata.deletion_grace_period_seconds)
            )
            if finalize:
                op: ops.StoreOp = ops.Delete(rid, kind.name, ns, name, rec.mod_rev)
            else:
                labels, fields = self._index(kind, new)
                op = ops.Update(
                    rid,
                    kind.name,
                    ns,
                    name,
                    self._seal(kind, ns, name, value),
                    labels,
                    fields,
                    rec.mod_rev,
                )
            code, rev, _ = await self.propose(op)
            if code == store.OK:
                if finalize:
                    return object_bytes(kind, value, rev)
                return self._response(kind, ns, name, new, rev)
            if code == store.NOT_FOUND:
                raise NotFound(f'{kind.plural} "{name}" not found')
            if rv:
                raise _stale(kind, name)
        raise Conflict(f'{kind.plural} "{name}": too many concurrent changes; try again')

    # -- delete -------------------------------------------------------------------------------

    async def delete(self, req: api_pb2.DeleteRequest) -> api_pb2.DeleteResponse:
        kind = kind_for(req.kind)
        ns = _namespace(kind, req.namespace)
        if kind.name == "Namespace" and req.name in PROTECTED_NAMESPACES:
            raise Forbidden(f'namespace "{req.name}" may not be deleted')
        pre = req.preconditions
        grace = req.grace_period_seconds if req.HasField("grace_period_seconds") else None
        if grace is not None and grace < 0:
            raise Invalid(
                f'{kind.plural} "{req.name}": gracePeriodSeconds {grace} must not be negative'
            )
        for attempt in range(10):
            if attempt:
                await self.barrier()
            rec = self.fsm.get(kind.name, ns, req.name)
            if rec is None:
                if attempt == 0:
                    continue
                if self._already_applied(req.request_id):
                    # A retried delete whose first attempt removed the object.
                    return api_pb2.DeleteResponse(deleted=True)
                raise NotFound(f'{kind.plural} "{req.name}" not found')
            if pre.resource_version and pre.resource_version != str(rec.mod_rev):
                if attempt == 0:
                    continue
                raise _stale(kind, req.name)
            plain = self.plain(kind, ns, req.name, rec)
            obj = _parse(kind, plain, rec.mod_rev)
            if pre.uid and pre.uid != obj.metadata.uid:
                raise Conflict(
                    f'{kind.plural} "{req.name}": precondition failed: uid '
                    f"{pre.uid} does not match the object's uid {obj.metadata.uid}"
                )
            marked = self._mark_for_deletion(kind, obj, grace, req.propagation_policy)
            rid = f"{req.request_id}/{attempt}" if req.request_id else ""
            if marked is None:
                if req.dry_run:
                    return api_pb2.DeleteResponse(
                        object=_wrap_bytes(kind, plain, rec.mod_rev), deleted=True
                    )
                code, rev, _ = await self.propose(
                    ops.Delete(rid, kind.name, ns, req.name, rec.mod_rev)
                )
                if code == store.OK:
                    obj.metadata.resource_version = str(rev)
                    return api_pb2.DeleteResponse(object=kinds_mod.wrap(obj), deleted=True)
            else:
                if req.dry_run:
                    return api_pb2.DeleteResponse(object=kinds_mod.wrap(marked), deleted=False)
                value = self._encode(kind, marked)
                labels, fields = self._index(kind, marked)
                sealed = self._seal(kind, ns, req.name, value)
                code, rev, _ = await self.propose(
                    ops.Update(rid, kind.name, ns, req.name, sealed, labels, fields, rec.mod_rev)
                )
                if code == store.OK:
                    marked.metadata.resource_version = str(rev)
                    return api_pb2.DeleteResponse(object=kinds_mod.wrap(marked), deleted=False)
            if code == store.NOT_FOUND:
                raise NotFound(f'{kind.plural} "{req.name}" not found')
            if pre.resource_version:
                raise _stale(kind, req.name)
        raise Conflict(f'{kind.plural} "{req.name}": too many concurrent changes; try again')

    def _mark_for_deletion(
        self, kind: Kind, obj: Any, grace: int | None, policy: str
    ) -> Any | None:
        """The object with deletionTimestamp set when it cannot go at once (finalizers, a
        graceful pod, a non-empty namespace), or None to delete it now."""
        meta = obj.metadata
        finalizers = list(meta.finalizers)
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif policy not in ("", "Background", "Foreground", "Orphan"):
            raise Invalid(f'propagationPolicy "{policy}" must be Background, Foreground or Orphan')
        graceful = False
        if kind.name == "Pod":
            if grace is None:
                grace = obj.spec.termination_grace_period_seconds
            graceful = (
                bool(obj.spec.node_name)
                and grace > 0
                and obj.status.phase not in ("Succeeded", "Failed")
            )
        if kind.name == "Namespace" and self._namespace_has_objects(meta.name):
            if "kubernetes" not in finalizers:
                finalizers.append("kubernetes")
            obj.status.phase = "Terminating"
        if not finalizers and not graceful:
            return None
        if meta.deletion_timestamp and not graceful and finalizers == list(meta.finalizers):
            return obj  # already being deleted; nothing changes
        if not meta.deletion_timestamp:
            meta.deletion_timestamp = now_rfc3339(self.clock())
        if graceful:
            cur = (
                meta.deletion_grace_period_seconds
                if meta.HasField("deletion_grace_period_seconds")
                else None
            )
            meta.deletion_grace_period_seconds = grace if cur is None else min(cur, grace or 0)
        elif kind.name == "Pod" and grace == 0:
            meta.deletion_grace_period_seconds = 0
        del meta.finalizers[:]
        meta.finalizers.extend(finalizers)
        return obj

    def _namespace_has_objects(self, ns: str) -> bool:
        with self.fsm.lock:
            for kind in kinds_mod.KINDS:
                if kind.namespaced and any(k[0] == ns for k in self.fsm.objects.get(kind.name, {})):
                    return True
        return False

    # -- bind ---------------------------------------------------------------------------------

    async def bind(self, req: api_pb2.BindRequest) -> bytes:
        kind = kinds_mod.BY_NAME["Pod"]
        ns = req.namespace or "default"
        if not req.node_name:
            raise Invalid(f'Binding "{req.name}" is invalid: target.name: required value')
        now = now_rfc3339(self.clock())

        def mutate(pod: Any) -> Any:
            if pod.metadata.deletion_timestamp:
                raise Conflict(f'pod "{req.name}" is being deleted, cannot be assigned')
            if pod.spec.node_name:
                if pod.spec.node_name == req.node_name:
                    return None
                raise Conflict(
                    f'pod "{req.name}" is already assigned to node "{pod.spec.node_name}"'
                )
            pod.spec.node_name = req.node_name
            set_condition(pod.status.conditions, "PodScheduled", "True", now=now)
            return pod

        return await self.read_modify_write(
            kind, ns, req.name, mutate, rv=req.resource_version, uid=req.uid
        )


# -- helpers ---------------------------------------------------------------------------------


def _unwrap(obj: api_pb2.Object) -> tuple[Kind, Any]:
    try:
        kind, msg = kinds_mod.unwrap(obj)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    copy: Any = kind.message()
    copy.CopyFrom(msg)
    size = copy.ByteSize()
    copy.DiscardUnknownFields()
    if copy.ByteSize() != size:
        name = copy.metadata.name or copy.metadata.generate_name or "<unnamed>"
        raise Invalid(
            f'{kind.name} "{name}" is invalid: it carries fields unknown to this '
            "server (a newer client or a corrupt message)"
        )
    return kind, copy


def _namespace(kind: Kind, ns: str) -> str:
    if not kind.namespaced:
        return ""
    return ns or "default"


def _stale(kind: Kind, name: str) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {kind.plural} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try "
        "again"
    )


def _wrap_bytes(kind: Kind, value: bytes, rev: int) -> api_pb2.Object:
    obj = api_pb2.Object()
    try:
        obj.ParseFromString(object_bytes(kind, value, rev))
    except DecodeError as exc:  # pragma: no cover - stored bytes are ours
        raise Invalid(str(exc)) from exc
    return obj


def _merge_update(kind: Kind, old: Any, new: Any, *, status: bool) -> Any:
    """The object to store for an Update (spec/metadata from ``new``, status kept) or an
    UpdateStatus (status from ``new``, everything else kept)."""
    if new.metadata.uid and new.metadata.uid != old.metadata.uid:
        raise Conflict(f'{kind.plural} "{old.metadata.name}": uid in the request does not match')
    if status:
        copied: Any = kind.message()
        copied.CopyFrom(old)
        _copy_field(copied, new, "status")
        return copied
    out: Any = kind.message()
    out.CopyFrom(new)
    out.kind, out.api_version = kind.name, kind.api_version
    m, o = out.metadata, old.metadata
    m.uid, m.creation_timestamp = o.uid, o.creation_timestamp
    m.deletion_timestamp = o.deletion_timestamp
    if o.HasField("deletion_grace_period_seconds"):
        m.deletion_grace_period_seconds = o.deletion_grace_period_seconds
    else:
        m.ClearField("deletion_grace_period_seconds")
    if o.deletion_timestamp:
        added = set(m.finalizers) - set(o.finalizers)
        if added:
            raise Forbidden(
                f'{kind.plural} "{m.name}": no new finalizers can be added while '
                "the object is being deleted"
            )
    if kind.has_status:
        _copy_field(out, old, "status")
    if kind.name == "Pod" and old.spec.node_name and out.spec.node_name != old.spec.node_name:
        raise Invalid(f'Pod "{m.name}" is invalid: spec.nodeName: field is immutable once set')
    if kind.name == "Node" and old.spec.pod_cidr and out.spec.pod_cidr != old.spec.pod_cidr:
        # Pods on the node hold addresses from it, and other nodes route it there.
        raise Invalid(f'Node "{m.name}" is invalid: spec.podCIDR: field is immutable once set')
    if kind.name == "Pod":
        added = {g.name for g in out.spec.scheduling_gates} - {
            g.name for g in old.spec.scheduling_gates
        }
        if added:
            raise Invalid(
                f'Pod "{m.name}" is invalid: spec.schedulingGates: only deletion is '
                f'allowed, but found new scheduling gate "{sorted(added)[0]}"'
            )
    m.generation = o.generation
    # Compare specs as they will be stored: a request that leaves out defaulted fields is not
    # a spec change (and must not bump generation or write a new revision).
    default_and_validate(kind, out)
    if kind.name in ("RoleBinding", "ClusterRoleBinding") and out.role_ref != old.role_ref:
        # Changing what a binding grants would bypass whoever checked the first one.
        raise Invalid(
            f'{kind.name} "{m.name}" is invalid: roleRef: field is immutable (delete '
            "the binding and create a new one)"
        )
    if hasattr(out, "spec") and out.spec.SerializeToString(
        deterministic=True
    ) != old.spec.SerializeToString(deterministic=True):
        m.generation = o.generation + 1
    return out


def _copy_field(dst: Any, src: Any, name: str) -> None:
    """Copy a message field, keeping 'unset' unset (an empty message still costs bytes)."""
    if src.HasField(name):
        getattr(dst, name).CopyFrom(getattr(src, name))
    else:
        dst.ClearField(name)


def _job_selector(job: Any, uid: str) -> None:
    """Jobs without a manual selector select their pods by the job's uid, as in Kubernetes."""
    if (
        job.spec.manual_selector
        or job.spec.selector.match_labels
        or job.spec.selector.match_expressions
    ):
        return
    for key in ("batch.kubernetes.io/controller-uid", "controller-uid"):
        job.spec.template.metadata.labels[key] = uid
    job.spec.template.metadata.labels["job-name"] = job.metadata.name or "job"
    job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] = uid


def compile_selectors(
    kind: Kind, label_selector: str, field_selector: str
) -> tuple[Matcher | None, Matcher | None]:
    """Parse both selectors; Invalid names the bad part or the unsupported field."""
    try:
        label_reqs = parse_labels(label_selector)
        field_reqs = parse_fields(field_selector)
    except SelectorError as exc:
        raise Invalid(str(exc)) from exc
    supported = set(kinds_mod.selectable_fields(kind, kind.message()))
    for r in field_reqs:
        if r.key not in supported:
            raise Invalid(
                f'field label not supported for {kind.plural}: "{r.key}" (supported: '
                f"{', '.join(sorted(supported))})"
            )
    return matcher(label_reqs), matcher(field_reqs)


def _matches(rec: Record, lm: Matcher | None, fm: Matcher | None) -> bool:
    return (lm is None or lm(rec.labels)) and (fm is None or fm(rec.fields))


def _encode_continue(
    rev: int, kind: Kind, ns: str | None, ls: str, fs: str, last: store.ObjKey
) -> str:
    raw = json.dumps(
        {"v": 1, "rev": rev, "kind": kind.name, "ns": ns, "ls": ls, "fs": fs, "last": list(last)},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(
    token: str, kind: Kind, ns: str | None, ls: str, fs: str
) -> tuple[int, store.ObjKey]:
    try:
        d = json.loads(base64.urlsafe_b64decode(token.encode()))
        rev, last = int(d["rev"]), (str(d["last"][0]), str(d["last"][1]))
        same = (d["kind"], d["ns"], d["ls"], d["fs"]) == (kind.name, ns, ls, fs)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise Invalid("continue: malformed continue token") from exc
    if not same:
        raise Invalid("continue: the token belongs to a different list request")
    return rev, last
