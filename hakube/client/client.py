"""The hakube client: every API verb for every kind, safe to retry across masters.

    client = Client(["127.0.0.1:6443", "127.0.0.1:6444", "127.0.0.1:6445"])
    pod = client.create(pod_pb2.Pod(metadata={"name": "web"}, spec=...))
    client.pods.get("web")                       # typed helper: returns a pod_pb2.Pod
    for ev in client.watch("pods", resource_version=pod.metadata.resource_version): ...

Why writes can be retried blindly: each logical write gets one request id, generated here (or
passed in by the caller) and reused by every attempt. The store remembers the result of each id,
so an attempt that lands after an earlier one did (the earlier answer was lost with its master)
returns the first result instead of applying again. Two verbs need more than that, because the
API server checks preconditions before the store sees the id: a Delete retried after its first
attempt went through finds nothing (NotFound), and an Update pinned to a resourceVersion finds a
newer version (Conflict). When such an error follows a possibly-applied attempt, the client
checks whether the object is already in the requested state and, if so, reports success.

Namespaces: ``namespace=None`` means the client's default namespace for verbs that name one
object (get, delete, bind) and all namespaces for list and watch, as in the API itself.

Threading: a Client may be shared by any number of threads. Calls block the calling thread;
watches and informers are iterated or run on threads the caller owns (see watch.py, informer.py).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any, overload

import grpc
from google.protobuf.message import Message

from hakube.api import kinds
from hakube.api.kinds import Kind
from hakube.api.v1 import api_pb2, pod_pb2
from hakube.client import apiwarnings, errors
from hakube.client.apply import ApplyResult, apply
from hakube.client.base import (
    ClientSettings,
    DeleteResult,
    KindLike,
    M,
    ObjectList,
    list_namespace,
    resolve_kind,
)
from hakube.client.informer import Informer
from hakube.client.resources import TypedResources
from hakube.client.transport import RetryPolicy, Stubs, Transport
from hakube.client.watch import Watch, open_watch
from hakube.pki.tls import Credentials

log = logging.getLogger("hakube.client")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _unary(
    method: str, req: Message, on_warning: Callable[[str], None] | None = None
) -> Callable[[Stubs, float], Any]:
    """The attempt function for one ObjectService call (binds ``req`` now, not at call time).
    With ``on_warning``, each warning the server attached to the answer, accepted or refused
    (trailing metadata ``warning``, see docs/api.md), is passed to it."""

    def attempt(stubs: Stubs, timeout: float) -> Any:
        return getattr(stubs.objects, method)(req, timeout=timeout)

    if on_warning is None:
        return attempt

    delivered: set[str] = set()  # across attempts: a retried write warns once

    def attempt_warned(stubs: Stubs, timeout: float) -> Any:
        try:
            out, call = getattr(stubs.objects, method).with_call(req, timeout=timeout)
        except grpc.RpcError as exc:
            # A refusal carries the warnings found before it (e.g. a field stored without
            # effect next to the field that was refused).
            if isinstance(exc, grpc.Call):
                texts = apiwarnings.of_metadata(exc.trailing_metadata())
                apiwarnings.deliver(on_warning, texts, delivered)
            raise
        texts = apiwarnings.of_metadata(call.trailing_metadata())
        apiwarnings.deliver(on_warning, texts, delivered)
        return out

    return attempt_warned


def describe(kind: Kind, name: str, namespace: str = "") -> str:
    """``pods/web`` or ``pods/web in namespace ns`` for messages."""
    where = f" in namespace {namespace}" if kind.namespaced and namespace else ""
    return f"{kind.plural}/{name}{where}"


def new_request_id() -> str:
    return uuid.uuid4().hex


class Client(TypedResources):
    """A connection to a hakube cluster. See the module docstring."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        credentials: Credentials | None = None,
        namespace: str = "default",
        timeout: float | None = None,
        policy: RetryPolicy | None = None,
        watch_idle_timeout: float = 20.0,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        """``endpoints``: master addresses ``HOST:PORT`` (a list, a comma-separated string, or
        one VIP). ``credentials``: the cluster CA and this client's certificate and key; when
        omitted they come from the client config file ($HAKUBE_CONFIG or ~/.hakube/config).
        ``timeout`` overrides the policy's per-call deadline. ``on_warning`` gets each warning
        the server attaches to a create or update, accepted or refused (e.g. a field stored
        without effect), and a BatchWriter on this client's transport passes it its items'
        warnings; by default each distinct one is logged once."""
        if credentials is None:
            from hakube.client.config import load_client_config

            credentials = load_client_config(
                None, server=",".join([endpoints] if isinstance(endpoints, str) else endpoints)
            ).credentials()
        policy = policy or RetryPolicy()
        if timeout is not None:
            policy = dataclasses.replace(
                policy, timeout=timeout, attempt_timeout=min(policy.attempt_timeout, timeout)
            )
        self.settings = ClientSettings(
            namespace=namespace, policy=policy, watch_idle_timeout=watch_idle_timeout
        )
        self.transport = Transport(
            endpoints, credentials=credentials, policy=policy, on_warning=on_warning
        )

    @classmethod
    def from_config(
        cls,
        path: str | None = None,
        *,
        server: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Client:
        """A client from the client config file (see hakube.client.config), with overrides."""
        from hakube.client.config import load_client_config

        cfg = load_client_config(path, server=server, namespace=namespace, timeout=timeout)
        return cls(
            cfg.servers, credentials=cfg.credentials(), namespace=cfg.namespace, timeout=cfg.timeout
        )

    def with_own_connection(self) -> Client:
        """A new client for the same masters, identity and settings, on connections of its own
        (close it separately): for calls that must not queue behind this client's streams and
        bulk writes, such as a leader's lease renewals."""
        twin = copy.copy(self)
        t = self.transport
        twin.transport = Transport(
            t.endpoints,
            credentials=t.credentials,
            policy=t.policy,
            on_warning=t.on_warning,
            own_connection=True,
        )
        return twin

    @property
    def on_warning(self) -> apiwarnings.Handler:
        """The warning handler, shared with the transport (so a BatchWriter on this client's
        transport delivers its items' warnings to it too)."""
        return self.transport.on_warning

    @on_warning.setter
    def on_warning(self, handler: apiwarnings.Handler) -> None:
        self.transport.on_warning = handler

    @property
    def servers(self) -> list[str]:
        """The master endpoints this client uses (``endpoints`` is the Endpoints kind)."""
        return list(self.transport.endpoints)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def _ns(self, kind: Kind, namespace: str | None) -> str:
        if not kind.namespaced:
            return ""
        return namespace or self.settings.namespace

    def _list_ns(self, kind: Kind, namespace: str | None) -> str:
        return list_namespace(kind, namespace)

    @staticmethod
    def _typed(obj: api_pb2.Object) -> Any:
        return kinds.unwrap(obj)[1]

    # -- verbs --------------------------------------------------------------------------------

    def create(
        self, obj: M, *, request_id: str = "", dry_run: bool = False, timeout: float | None = None
    ) -> M:
        """Create ``obj``; AlreadyExists if the name is taken, Invalid names a bad field."""
        kind = resolve_kind(type(obj))
        msg = type(obj)()
        msg.CopyFrom(obj)
        meta = msg.metadata  # type: ignore[attr-defined]
        if kind.namespaced and not meta.namespace:
            meta.namespace = self.settings.namespace
        generated = not meta.name and bool(meta.generate_name)
        for _ in range(5):
            if generated:
                # Chosen here, not by the server, so every attempt of this call uses one name.
                meta.name = meta.generate_name + "".join(random.choices(_NAME_CHARS, k=5))
            rid = request_id or new_request_id()
            req = api_pb2.CreateRequest(object=kinds.wrap(msg), request_id=rid, dry_run=dry_run)
            try:
                out = self.transport.call(
                    _unary("Create", req, self.on_warning),
                    what=f"create {describe(kind, meta.name)}",
                    timeout=timeout,
                    request_id=rid,
                )
            except errors.AlreadyExists:
                if generated and not request_id:
                    continue  # a random name collided; pick another
                raise
            return self._typed(out)  # type: ignore[no-any-return]
        raise errors.AlreadyExists(
            f'{kind.plural}: no free name with prefix "{meta.generate_name}" after 5 tries'
        )

    @overload
    def get(
        self,
        kind: type[M],
        name: str,
        *,
        namespace: str | None = ...,
        serializable: bool = ...,
        timeout: float | None = ...,
    ) -> M: ...

    @overload
    def get(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str | None = ...,
        serializable: bool = ...,
        timeout: float | None = ...,
    ) -> Any: ...

    def get(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str | None = None,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """One object; NotFound if absent. ``serializable`` reads the answering master's
        replica without a quorum round trip (faster, possibly stale)."""
        k = resolve_kind(kind)
        ns = self._ns(k, namespace)
        req = api_pb2.GetRequest(kind=k.name, namespace=ns, name=name, serializable=serializable)
        out = self.transport.call(
            _unary("Get", req), what=f"get {describe(k, name, ns)}", timeout=timeout
        )
        return self._typed(out)

    @overload
    def list(
        self,
        kind: type[M],
        *,
        namespace: str | None = ...,
        label_selector: str = ...,
        field_selector: str = ...,
        limit: int = ...,
        page_size: int = ...,
        serializable: bool = ...,
        timeout: float | None = ...,
    ) -> ObjectList[M]: ...

    @overload
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

    def list(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        page_size: int = 500,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> ObjectList[Any]:
        """Objects of a kind (all namespaces unless ``namespace``), fetched in pages of
        ``page_size`` from one consistent snapshot; ``limit`` caps the total. If the snapshot
        is compacted between pages (Gone), the list starts over."""
        k = resolve_kind(kind)
        ns = self._list_ns(k, namespace)
        for _ in range(5):
            items: list[Any] = []
            token, rv = "", ""
            try:
                while True:
                    want = page_size
                    if limit:
                        left = limit - len(items)
                        want = min(want, left) if want else left
                    req = api_pb2.ListRequest(
                        kind=k.name,
                        namespace=ns,
                        label_selector=label_selector,
                        field_selector=field_selector,
                        limit=want,
                        serializable=serializable,
                    )
                    setattr(req, "continue", token)
                    resp = self.transport.call(
                        _unary("List", req), what=f"list {k.plural}", timeout=timeout
                    )
                    items.extend(self._typed(o) for o in resp.items)
                    rv = rv or resp.resource_version
                    token = getattr(resp, "continue")
                    if not token or (limit and len(items) >= limit):
                        return ObjectList(items, rv, k)
            except errors.Gone:
                if not token:
                    raise
        raise errors.Gone(f"list {k.plural}: the snapshot kept being compacted; try again")

    def update(
        self, obj: M, *, request_id: str = "", dry_run: bool = False, timeout: float | None = None
    ) -> M:
        """Replace spec and metadata (status is kept). A set metadata.resourceVersion makes it
        a compare-and-swap: Conflict if the object changed since."""
        return self._update(
            obj, status=False, request_id=request_id, dry_run=dry_run, timeout=timeout
        )

    def update_status(
        self, obj: M, *, request_id: str = "", dry_run: bool = False, timeout: float | None = None
    ) -> M:
        """Replace only the status (compare-and-swap as ``update``)."""
        return self._update(
            obj, status=True, request_id=request_id, dry_run=dry_run, timeout=timeout
        )

    def _update(
        self, obj: M, *, status: bool, request_id: str, dry_run: bool, timeout: float | None
    ) -> M:
        kind = resolve_kind(type(obj))
        meta = obj.metadata  # type: ignore[attr-defined]
        ns = self._ns(kind, meta.namespace)
        msg = type(obj)()
        msg.CopyFrom(obj)
        if kind.namespaced:
            msg.metadata.namespace = ns  # type: ignore[attr-defined]
        rid = request_id or new_request_id()
        req = api_pb2.UpdateRequest(object=kinds.wrap(msg), request_id=rid, dry_run=dry_run)
        stub = "UpdateStatus" if status else "Update"
        what = f"update{' status of' if status else ''} {describe(kind, meta.name, ns)}"
        try:
            out = self.transport.call(
                _unary(stub, req, self.on_warning), what=what, timeout=timeout, request_id=rid
            )
        except errors.Conflict as exc:
            if not (exc.retried and meta.resource_version):
                raise
            current = self._already_applied(kind, msg, stub, timeout)
            if current is None:
                raise
            log.info("%s: an earlier attempt applied it (its answer was lost)", what)
            return current  # type: ignore[no-any-return]
        return self._typed(out)  # type: ignore[no-any-return]

    def _already_applied(
        self, kind: Kind, msg: Message, stub: str, timeout: float | None
    ) -> Any | None:
        """After a CAS update was retried and hit Conflict: the current object if applying the
        update now would change nothing (our lost first attempt did it), else None."""
        meta = msg.metadata  # type: ignore[attr-defined]
        current = self.get(kind, meta.name, namespace=meta.namespace, timeout=timeout)
        probe = type(msg)()
        probe.CopyFrom(msg)
        probe.metadata.resource_version = current.metadata.resource_version  # type: ignore
        req = api_pb2.UpdateRequest(object=kinds.wrap(probe), dry_run=True)
        would = self._typed(
            self.transport.call(
                _unary(stub, req),
                what=f"check update of {describe(kind, meta.name)}",
                timeout=timeout,
            )
        )
        same = would.SerializeToString(deterministic=True) == current.SerializeToString(
            deterministic=True
        )
        return current if same else None

    def delete(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        uid: str = "",
        resource_version: str = "",
        request_id: str = "",
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> DeleteResult[Any]:
        """Delete (or mark for deletion) one object; NotFound if absent. ``uid`` and
        ``resource_version`` are preconditions (Conflict when they do not match)."""
        k = resolve_kind(kind)
        ns = self._ns(k, namespace)
        rid = request_id or new_request_id()
        req = api_pb2.DeleteRequest(
            kind=k.name,
            namespace=ns,
            name=name,
            propagation_policy=propagation_policy,
            request_id=rid,
            dry_run=dry_run,
            preconditions=api_pb2.Preconditions(uid=uid, resource_version=resource_version),
        )
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        try:
            resp = self.transport.call(
                _unary("Delete", req),
                what=f"delete {describe(k, name, ns)}",
                timeout=timeout,
                request_id=rid,
            )
        except errors.NotFound as exc:
            if exc.retried:
                log.info(
                    "delete %s: an earlier attempt removed it (its answer was lost)",
                    describe(k, name, ns),
                )
                return DeleteResult(None, True)
            raise
        obj = self._typed(resp.object) if resp.HasField("object") else None
        return DeleteResult(obj, resp.deleted)

    def bind(
        self,
        name: str,
        node_name: str,
        *,
        namespace: str | None = None,
        uid: str = "",
        resource_version: str = "",
        timeout: float | None = None,
    ) -> pod_pb2.Pod:
        """Assign a pending pod to a node (the scheduler's write). Conflict if it is already on
        another node or the preconditions fail. Binding to the node the pod is already on is a
        no-op, which is what makes a retried Bind safe."""
        ns = namespace or self.settings.namespace
        req = api_pb2.BindRequest(
            namespace=ns, name=name, node_name=node_name, uid=uid, resource_version=resource_version
        )
        what = f"bind pods/{name} to node {node_name}"
        try:
            out = self.transport.call(
                _unary("Bind", req), what=what, timeout=timeout, request_id=new_request_id()
            )
        except errors.Conflict as exc:
            if exc.retried:
                pod = self.get(pod_pb2.Pod, name, namespace=ns, timeout=timeout)
                if pod.spec.node_name == node_name and (not uid or pod.metadata.uid == uid):
                    return pod
            raise
        return self._typed(out)  # type: ignore[no-any-return]

    def cluster_status(
        self, *, endpoint: str | None = None, timeout: float | None = None
    ) -> api_pb2.ClusterStatusResponse:
        """The Raft view of one master (``endpoint``), or of whichever master answers."""
        req = api_pb2.ClusterStatusRequest()

        def call(s: Stubs, t: float) -> api_pb2.ClusterStatusResponse:
            return s.cluster.Status(req, timeout=t)  # type: ignore[no-any-return]

        return self.transport.call(
            call, what=f"status of {endpoint or 'the cluster'}", timeout=timeout, endpoint=endpoint
        )

    # -- streams and caches -------------------------------------------------------------------

    def watch(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | int | None = None,
        bookmarks: bool = False,
    ) -> Watch:
        """A resumable stream of changes (iterate it, ``stop()`` it from any thread).
        ``resource_version``: deliver changes after it; None: from now."""
        return open_watch(
            self,
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            bookmarks=bookmarks,
        )

    def informer(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0.0,
    ) -> Informer[Any]:
        """A list+watch cache of one kind; call ``start()`` on it."""
        return Informer(
            self,
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resync_period=resync_period,
        )

    def apply(self, obj: Message | dict[str, Any], *, timeout: float | None = None) -> ApplyResult:
        """Create-or-update like ``kubectl apply``; see apply.py."""
        return apply(self, obj, timeout=timeout)
