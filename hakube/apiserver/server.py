"""The gRPC server of one master: object service, cluster service, health and reflection.

Handlers are registered generically (not through the generated servicer base) so that read
paths can return pre-encoded bytes (see wire.py); every handler goes through ``_call``, which
turns ApiError into the right status and records metrics.

Every request is authenticated first (hakube.apiserver.authn): the server listens with TLS only
and requires a client certificate; the handler maps it to an identity, kept in
``authn.current`` for the rest of the request. Health and reflection need no identity (they
still run behind TLS). Callers with only a bootstrap identity may call nothing but the methods
``bootstrap_methods`` lists (the join service).

Then every request is authorized, here and nowhere else (hakube.apiserver.authz): the method's
attributes (``authz.attributes.METHODS``: verb, resource, namespace, name) are read from the
request and the authorizer decides; a denial is PERMISSION_DENIED naming user, verb, resource
and namespace. Services registered by the master (ops, join, node proxy, authorization) go
through the same ``authenticate``, so no handler decides on its own who may call it.

Then every request of the object, cluster and lease services (and the services registered
through ``unary``) takes a seat of its priority level (hakube.apiserver.flowcontrol), or waits
in a fair queue, or is refused with RESOURCE_EXHAUSTED and a ``retry-after-ms`` hint. A watch
holds a seat only while it starts, and counts against its client's cap of open streams. Both
doors -- gRPC and the Kubernetes REST API -- pass through the same seats (``invoke``, ``watch``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from hakube.api.v1 import api_pb2
from hakube.apiserver import apiwarnings, authn, batch
from hakube.apiserver.audit import AuditLog
from hakube.apiserver.authz.attributes import METHODS, Attributes
from hakube.apiserver.authz.authorizer import Authorizer
from hakube.apiserver.errors import ApiError, Forbidden, Invalid, relay
from hakube.apiserver.flowcontrol import FlowControl, Settings, TooBusy
from hakube.apiserver.leases import LeaseAPI
from hakube.apiserver.metrics import MasterMetrics, kind_label
from hakube.apiserver.objects import ObjectAPI, compile_selectors, kind_for
from hakube.apiserver.watch import Watcher, WatchHub
from hakube.pki.certs import Identity
from hakube.pki.tls import TlsFiles, server_credentials

OBJECT_SERVICE = "hakube.api.v1.ObjectService"
CLUSTER_SERVICE = "hakube.api.v1.ClusterService"
LEASE_SERVICE = "hakube.api.v1.LeaseService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest response (snapshots stream out in bigger messages than any request)."""
MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""Largest request: twice the largest object (1.5 MiB), as etcd caps requests; a bigger one is
refused by gRPC before it is read into memory (RESOURCE_EXHAUSTED)."""


def _serialize(x: Any) -> bytes:
    return x if isinstance(x, bytes) else x.SerializeToString()


def _object_kind(req: Any) -> str:
    return req.object.WhichOneof("kind") or ""


def _kind_field(req: Any) -> str:
    return str(req.kind)


def _no_kind(req: Any) -> str:
    return ""


def _kind_getter(req_type: Any) -> Callable[[Any], str]:
    """How the metrics' ``kind`` label is read from a request type, decided once per type."""
    getter = _KIND_GETTERS.get(req_type)
    if getter is None:
        getter = _KIND_GETTERS[req_type] = _pick_kind_getter(req_type)
    return getter


_KIND_GETTERS: dict[Any, Callable[[Any], str]] = {}


def _pick_kind_getter(req_type: Any) -> Callable[[Any], str]:
    fields = req_type.DESCRIPTOR.fields_by_name
    if "kind" in fields and fields["kind"].type == fields["kind"].TYPE_STRING:
        return _kind_field
    if "object" in fields:
        return _object_kind
    if req_type is api_pb2.BindRequest:
        return lambda req: "Pod"
    return _no_kind


async def _decode(req_type: Any, raw: bytes, ctx: grpc.aio.ServicerContext) -> Any:
    try:
        return req_type.FromString(raw)
    except DecodeError as exc:
        await ctx.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"malformed {req_type.DESCRIPTOR.name}: {exc}"
        )


async def _abort(
    ctx: grpc.aio.ServicerContext, exc: ApiError, warnings: Sequence[str] = ()
) -> None:
    """End the call with the error's status (and a refusal's retry hint), and the warnings
    found before the refusal (apiwarnings)."""
    trailers = tuple(exc.trailers) if isinstance(exc, TooBusy) else ()
    trailers += _warning_trailers(warnings)
    await ctx.abort(exc.code, exc.message, trailing_metadata=trailers)


def _warning_trailers(warnings: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((apiwarnings.METADATA_KEY, w) for w in warnings)


class ApiServer:
    """Builds and runs the grpc.aio server around an ObjectAPI."""

    def __init__(
        self,
        api: ObjectAPI,
        hub: WatchHub,
        metrics: MasterMetrics,
        cluster_status: Callable[[], api_pb2.ClusterStatusResponse],
        *,
        authenticator: authn.Authenticator,
        authorizer: Authorizer,
        audit: AuditLog | None = None,
        flow: FlowControl | None = None,
    ) -> None:
        self.api = api
        self.flow = flow if flow is not None else FlowControl(Settings(), metrics.registry)
        """Priority and fairness: every request's seat (hakube.apiserver.flowcontrol)."""
        self.audit = audit
        """Gets one record per finished request (unary and watch), with its final code."""
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.bootstrap_methods: set[str] = set()
        """Methods a bootstrap identity may call (registered by the join service)."""
        self.hub = hub
        self.metrics = metrics
        self.cluster_status = cluster_status
        self.health = HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.extra_services: dict[str, list[grpc.GenericRpcHandler]] = {}
        """Further services (name -> handlers) registered by the master, e.g. OpsService."""

    @functools.cached_property
    def calls(self) -> dict[str, tuple[Callable[[Any], Awaitable[Any]], Any]]:
        """The object service's unary methods (name -> handler, request type), served by the
        gRPC door (``handlers``) and by the Kubernetes REST door (``invoke``) alike."""
        api = self.api
        return {
            "Create": (api.create, api_pb2.CreateRequest),
            "Get": (api.get, api_pb2.GetRequest),
            "Update": (lambda r: api.update(r, status=False), api_pb2.UpdateRequest),
            "UpdateStatus": (lambda r: api.update(r, status=True), api_pb2.UpdateRequest),
            "Delete": (api.delete, api_pb2.DeleteRequest),
            "List": (api.list, api_pb2.ListRequest),
            "Bind": (api.bind, api_pb2.BindRequest),
        }

    def authenticate(self, method: str, ctx: grpc.aio.ServicerContext, req: Any = None) -> Identity:
        """The caller of ``method`` with request ``req``, authorized; Unauthenticated or
        Forbidden (an ApiError) if it may not make this call. Sets ``authn.current`` for the
        rest of the request."""
        identity = self.authenticator.identify(ctx)
        self.authorize(method, identity, req)
        return identity

    def authorize(self, method: str, identity: Identity, req: Any = None) -> Attributes | None:
        """Forbidden (an ApiError) unless ``identity`` may call ``method`` with ``req``; sets
        ``authn.current``; returns the request's attributes (flow control classifies by them).
        Both doors (gRPC and the Kubernetes REST API) come through here. A method without an
        entry in ``METHODS`` is refused."""
        if authn.is_bootstrap(identity) and method not in self.bootstrap_methods:
            raise Forbidden(f'"{identity.user}" is a bootstrap token: it may only join a node')
        try:
            attributes_of = METHODS[method]
        except KeyError:
            raise Forbidden(f'method "{method}" has no authorization attributes') from None
        attrs = None
        if attributes_of is not None:
            attrs = attributes_of(req)
            self.authorizer.check(identity, attrs)
        authn.current.set(identity)
        return attrs

    async def invoke(
        self,
        method: str,
        caller: Identity | Callable[[], Identity],
        req: Any,
        fn: Callable[[Any], Awaitable[Any]] | None = None,
        kind_of: Callable[[Any], str] | None = None,
    ) -> Any:
        """One call through either door: the caller (an Identity, or how to learn it)
        authorized for ``method``, ``fn`` run (default: the object service's handler of
        ``method``), the request measured and audited; an ApiError is raised for the door to
        encode (gRPC status or Kubernetes Status)."""
        start = time.perf_counter()
        code = "OK"
        try:
            identity = caller() if callable(caller) else caller
            attrs = self.authorize(method, identity, req)
            level = await self.flow.admit(identity, attrs)
            try:
                return await (fn or self.calls[method][0])(req)
            finally:
                self.flow.done(level)
        except ApiError as exc:
            code = exc.code.name
            raise
        except Exception:
            code = grpc.StatusCode.UNKNOWN.name
            raise
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.observe_request(
                method, (kind_of or _kind_getter(type(req)))(req), code, elapsed
            )
            if self.audit is not None:
                self.audit.record(method, req, code, elapsed)

    def unary(
        self, method: str, fn: Callable[[Any], Awaitable[Any]], req_type: Any
    ) -> grpc.RpcMethodHandler:
        parse = req_type.FromString
        kind_of = _kind_getter(req_type)
        identify = self.authenticator.identify
        invoke = self.invoke

        async def handler(raw: bytes, ctx: grpc.aio.ServicerContext) -> Any:
            # Requests arrive as bytes and are decoded here, so that a corrupt message is
            # INVALID_ARGUMENT with a message instead of grpc's generic UNKNOWN.
            try:
                req = parse(raw)
            except DecodeError as exc:
                await ctx.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"malformed {req_type.DESCRIPTOR.name}: {exc}"
                )
            try:
                with apiwarnings.collect() as warnings:
                    out = await invoke(method, lambda: identify(ctx), req, fn, kind_of)
            except ApiError as exc:
                await _abort(ctx, exc, warnings)
            if warnings:
                ctx.set_trailing_metadata(_warning_trailers(warnings))
            return out

        return grpc.unary_unary_rpc_method_handler(handler, response_serializer=_serialize)

    async def _watch(self, raw: bytes, ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        req = await _decode(api_pb2.WatchRequest, raw, ctx)
        identify = self.authenticator.identify
        async for data in relay(self.watch(req, lambda: identify(ctx)), ctx):
            yield data

    async def watch(
        self, req: api_pb2.WatchRequest, caller: Callable[[], Identity]
    ) -> AsyncGenerator[bytes, None]:
        """A watch stream of serialized ``WatchEvent`` for either door: ``caller`` says who asks
        (raising an ApiError when it cannot); the caller is authorized, holds a seat while the
        watch starts and one of its stream slots while it runs; errors are raised as
        ApiError, and the request is counted and audited when the stream ends."""
        code = grpc.StatusCode.OK
        start = time.perf_counter()
        try:
            identity = caller()
            attrs = self.authorize("Watch", identity, req)
            with self.flow.stream(identity):
                # A seat while the watch starts, none while it streams (see flowcontrol).
                level = await self.flow.admit(identity, attrs)
                try:
                    watcher = self._subscribe(req)
                finally:
                    self.flow.done(level)
                async for data in self.hub.stream(
                    watcher,
                    bookmarks=req.allow_bookmarks,
                    interval=float(req.bookmark_interval_seconds or 10),
                ):
                    yield data
        except ApiError as exc:
            code = exc.code
            raise
        except Exception:
            code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            self.metrics.requests.labels("Watch", kind_label(req.kind), code.name).inc()
            if self.audit is not None:
                self.audit.record("Watch", req, code.name, time.perf_counter() - start)

    def _subscribe(self, req: api_pb2.WatchRequest) -> Watcher:
        """Check a watch request and register its watcher with the hub."""
        kind = kind_for(req.kind)
        ns = req.namespace if kind.namespaced and req.namespace else None
        lm, fm = compile_selectors(kind, req.label_selector, req.field_selector)
        try:
            from_rev = int(req.resource_version or "0")
        except ValueError as exc:
            raise Invalid(f'resourceVersion "{req.resource_version}" is not a number') from exc
        interval = float(req.bookmark_interval_seconds or 10)
        if not 1 <= interval <= 3600:
            raise Invalid(
                f"watch {req.kind}: bookmarkIntervalSeconds "
                f"{req.bookmark_interval_seconds} must be between 1 and 3600"
            )
        return self.hub.subscribe(kind, ns, lm, fm, from_rev)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        api = self.api
        objects = {
            name: self.unary(name, fn, req_type) for name, (fn, req_type) in self.calls.items()
        }
        objects["Watch"] = grpc.unary_stream_rpc_method_handler(
            self._watch, response_serializer=_serialize
        )
        objects["Batch"] = batch.handler(self)

        async def status(req: Any) -> Any:
            return self.cluster_status()

        cluster = {"Status": self.unary("Status", status, api_pb2.ClusterStatusRequest)}
        leases = LeaseAPI(api)
        lease = {
            "Grant": self.unary("LeaseGrant", leases.grant, api_pb2.LeaseGrantRequest),
            "KeepAlive": self.unary(
                "LeaseKeepAlive", leases.keep_alive, api_pb2.LeaseKeepAliveRequest
            ),
            "Revoke": self.unary("LeaseRevoke", leases.revoke, api_pb2.LeaseRevokeRequest),
        }
        return [
            grpc.method_handlers_generic_handler(OBJECT_SERVICE, objects),
            grpc.method_handlers_generic_handler(CLUSTER_SERVICE, cluster),
            grpc.method_handlers_generic_handler(LEASE_SERVICE, lease),
        ]

    async def start(
        self, listen: str, tls: TlsFiles, extra_roots: Callable[[], bytes] | None = None
    ) -> int:
        """Bind with TLS (client certificates required) and start serving; returns the bound
        port. ``extra_roots``: further trusted client issuers (bootstrap tokens)."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers(self.handlers())
        for handlers in self.extra_services.values():
            server.add_generic_rpc_handlers(handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [
                OBJECT_SERVICE,
                CLUSTER_SERVICE,
                LEASE_SERVICE,
                *self.extra_services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        port = server.add_secure_port(listen, server_credentials(tls, extra_roots))
        if port == 0:
            raise OSError(f"cannot listen on {listen} for the API")
        await server.start()
        self.server = server
        return port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", OBJECT_SERVICE, CLUSTER_SERVICE, LEASE_SERVICE):
            await self.health.set(name, status)

    async def stop(self, grace: float = 1.0) -> None:
        if self.server is not None:
            self.hub.close_all()
            await self.server.stop(grace)
            self.server = None
