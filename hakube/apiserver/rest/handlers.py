"""The verbs of the Kubernetes REST API, each turned into the object service's own request.

Every call goes through ``ApiServer.invoke`` (or ``ApiServer.watch``): the same
authorization, validation, admission, store and watch code as a gRPC call, the same metrics
and audit records. What is here is Kubernetes' HTTP conventions: paths, query parameters,
status codes, patches computed on the JSON form, Tables and watch events as JSON lines.

Verbs and what they become (``Patch``/``PatchStatus``/``UpdateScale``/``PatchScale`` are RBAC
entries of their own in ``authz.attributes.METHODS``, run by the update code):

=============================  ===================================================
GET collection (?watch=1)      List (Watch)
GET / PUT / DELETE item        Get / Update / Delete
POST collection                Create
PATCH item                     Get, patch applied to the JSON, Update (with CAS)
GET / PUT / PATCH .../status   Get / UpdateStatus / PatchStatus
GET / PUT / PATCH .../scale    Get / UpdateScale / PatchScale (spec.replicas)
POST pods/NAME/binding         Bind
DELETE collection              List, then Delete of each item
=============================  ===================================================

scale, binding, log, exec and access reviews are in ``subresources`` (a mixin), request
bodies in ``bodies``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from hakube.api import convert, kinds
from hakube.api.convert import ManifestError
from hakube.api.kinds import Kind
from hakube.api.v1 import api_pb2, authz_pb2
from hakube.apiserver import apiwarnings
from hakube.apiserver.authn import Authenticator
from hakube.apiserver.errors import ApiError, Conflict, Forbidden, Invalid, NotFound
from hakube.apiserver.rest import codec, fieldowners, openapi, patch, routes, tokenrequest
from hakube.apiserver.rest.bodies import (
    APPLY_PATCH,
    JSON,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_RETRIES,
    STRATEGIC_PATCH,
    dry_run,
    ok,
    read_body,
)
from hakube.apiserver.rest.http import Request, Response
from hakube.apiserver.rest.status import (
    BadRequest,
    MethodNotAllowed,
    UnsupportedMediaType,
    error_response,
    of_error,
)
from hakube.apiserver.rest.subresources import Subresources, named_update, scale_doc
from hakube.apiserver.server import ApiServer
from hakube.pki.certs import Identity

TABLE_PAGE = 1000
"""Objects read from the store per List call while a Table list streams."""


class RestApi(Subresources):
    """Answers one HTTP request; ``handle`` is the HttpServer's handler."""

    def __init__(
        self,
        server: ApiServer,
        authenticator: Authenticator,
        *,
        review: Callable[[authz_pb2.AccessReviewRequest], Awaitable[Any]] | None = None,
        logs: Callable[..., AsyncGenerator[Any, None]] | None = None,
        exec_: Callable[[Any], Awaitable[Any]] | None = None,
        create_token: tokenrequest.CreateToken | None = None,
    ) -> None:
        self.server = server
        self.create_token = create_token
        """The token service's CreateToken (``serviceaccounts/token``; None: not served)."""
        self.exec = exec_
        """The node proxy's Exec for the authorized caller (``kubectl exec``)."""
        self.api = server.api
        self.authenticator = authenticator
        self.review = review
        """AuthorizationService's AccessReview (``kubectl auth can-i``)."""
        self.logs = logs
        """The node proxy's log stream (``kubectl logs``): (request, admit) -> chunks."""
        self.openapi = openapi.Documents()

    # -- entry --------------------------------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        try:
            if req.peer_cert:
                identity = self.authenticator.identify_certificate(
                    ssl.DER_cert_to_PEM_cert(req.peer_cert).encode()
                )
            else:
                identity = self.authenticator.identify_bearer(req.headers.get("authorization", ""))
        except ApiError as exc:
            return error_response(exc)
        with apiwarnings.collect() as warnings:
            resp = await self._answer(req, identity)
        if warnings:
            # One header, comma-separated warnings (RFC 7234 allows a list; kubectl reads it),
            # on a refusal too: what was found before it is worth knowing while fixing it.
            resp.headers["Warning"] = ", ".join(map(apiwarnings.header_value, warnings))
        return resp

    async def _answer(self, req: Request, identity: Identity) -> Response:
        """The route's answer, or the Kubernetes Status of its error."""
        try:
            if any(h.startswith("impersonate-") for h in req.headers):
                # Refused rather than ignored: the caller would believe it acted as another.
                raise Forbidden(
                    f'user "{identity.user}": impersonation (kubectl --as) is not served by '
                    "hakube's Kubernetes API"
                )
            return await self._route(req, identity)
        except ApiError as exc:
            route = routes.parse(req.path)
            kind = route.kind if route is not None else None
            if kind is not None and kind.group:
                # Kubernetes names a resource of a named group with it: deployments.apps "x".
                exc.message = exc.message.replace(
                    f'{kind.plural} "', f'{kind.plural}.{kind.group} "', 1
                )
            return error_response(
                exc,
                kind=kind.plural if kind else "",
                name=route.name if route else "",
                group=kind.group if kind else "",
            )

    async def _token(self, req: Request, identity: Identity, ns: str, name: str) -> Response:
        if self.create_token is None:
            raise MethodNotAllowed("serviceaccounts/token is not served by this master")
        return await tokenrequest.create_token(
            self.server, self.create_token, req, identity, ns, name
        )

    async def _route(self, req: Request, identity: Identity) -> Response:
        path = req.path.rstrip("/") or "/"
        if req.method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                return ok(doc)
            if path in ("/healthz", "/livez", "/readyz"):
                return Response(200, b"ok", "text/plain")
            if path.startswith("/openapi/"):
                found = self.openapi.get(path)
                if found is None:
                    raise NotFound(f'the server could not find the requested resource "{path}"')
                return Response(200, found)
        route = routes.parse(path)
        if route is not None and route.group == routes.REVIEW_GROUP:
            return await self._review(req, identity, route)
        if (
            route is None
            or route.kind is None
            or f"{route.group}/{route.version}".lstrip("/") != route.kind.api_version
        ):
            raise NotFound(f'the server could not find the requested resource "{path}"')
        return await self._resource(req, identity, route, route.kind)

    def _discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            return routes.VERSION_INFO
        if path == "/api":
            return routes.core_versions()
        if path == "/apis":
            return routes.group_list()
        if path == "/api/v1":
            return routes.resource_list("v1")
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "apis":
            return routes.group_doc(parts[2])
        if len(parts) == 4 and parts[1] == "apis":
            return routes.resource_list(f"{parts[2]}/{parts[3]}")
        return None

    # -- resources ----------------------------------------------------------------------------

    async def _resource(
        self, req: Request, identity: Identity, route: routes.Route, kind: Kind
    ) -> Response:
        m, sub, ns = req.method, route.subresource, route.namespace
        if kind.namespaced and route.name and not ns:
            raise NotFound(f'{kind.plural} "{route.name}": a namespaced resource needs a namespace')
        if not route.name:
            if m == "GET":
                if req.flag("watch"):
                    return self._watch(req, identity, kind, ns)
                return await self._list(req, identity, kind, ns)
            if m == "POST":
                return await self._create(req, identity, kind, ns)
            if m == "DELETE":
                return await self._delete_collection(req, identity, kind, ns)
            raise MethodNotAllowed(f"{m} is not supported on {kind.plural}")
        if sub in ("", "status"):
            if sub == "status" and not kind.has_status:
                raise NotFound(f"{kind.plural} have no status subresource")
            if m == "GET":
                return await self._get(req, identity, kind, ns, route.name)
            if m == "PUT":
                return await self._update(req, identity, kind, ns, route.name, status=sub != "")
            if m == "PATCH":
                return await self._patch(req, identity, kind, ns, route.name, status=sub != "")
            if m == "DELETE" and not sub:
                return await self._delete(req, identity, kind, ns, route.name)
        elif sub == "scale" and kind.name in ("Deployment", "ReplicaSet", "StatefulSet"):
            if m == "GET":
                return ok(scale_doc(await self._fetch(identity, kind, ns, route.name)))
            if m in ("PUT", "PATCH"):
                return await self._scale(req, identity, kind, ns, route.name)
        elif sub == "binding" and kind.name == "Pod" and m == "POST":
            return await self._bind(req, identity, ns, route.name)
        elif sub == "log" and kind.name == "Pod" and m == "GET":
            return await self._logs(req, identity, ns, route.name)
        elif sub == "exec" and kind.name == "Pod" and m in ("GET", "POST"):
            return await self._exec(req, identity, ns, route.name)
        elif sub == "token" and kind.name == "ServiceAccount" and m == "POST":
            return await self._token(req, identity, ns, route.name)
        raise MethodNotAllowed(f"{m} is not supported on {kind.plural}/{sub or route.name}")

    async def _fetch(self, identity: Identity, kind: Kind, ns: str, name: str) -> Message:
        raw = await self.server.invoke(
            "Get", identity, api_pb2.GetRequest(kind=kind.name, namespace=ns, name=name)
        )
        return codec.object_msg(raw)

    async def _get(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str
    ) -> Response:
        msg = await self._fetch(identity, kind, ns, name)
        if codec.wants_table(req.headers.get("accept", "")):
            return ok(
                codec.table_doc(
                    kind,
                    [msg],
                    resource_version=msg.metadata.resource_version,  # type: ignore[attr-defined]
                    include_object=req.arg("includeObject", "Metadata"),
                )
            )
        return ok(codec.object_doc(msg))

    async def _list(self, req: Request, identity: Identity, kind: Kind, ns: str) -> Response:
        try:
            limit = int(req.arg("limit") or 0)
        except ValueError as exc:
            raise BadRequest(f'limit "{req.arg("limit")}" is not a number') from exc
        table = codec.wants_table(req.headers.get("accept", ""))
        lr = api_pb2.ListRequest(
            kind=kind.name,
            namespace=ns,
            label_selector=req.arg("labelSelector"),
            field_selector=req.arg("fieldSelector"),
            # A Table is served whole (see _table_list); it is read in pages all the same.
            limit=TABLE_PAGE if table else limit,
            serializable=req.arg("resourceVersion") == "0",
        )
        setattr(lr, "continue", req.arg("continue"))
        resp = api_pb2.ListResponse.FromString(await self.server.invoke("List", identity, lr))
        if table:
            return self._table_list(req, identity, kind, lr, resp)
        return ok(codec.list_doc(kind, resp))

    def _table_list(
        self,
        req: Request,
        identity: Identity,
        kind: Kind,
        lr: api_pb2.ListRequest,
        first: api_pb2.ListResponse,
    ) -> Response:
        """A list as a Table, every item in one streamed answer, ``limit`` not honoured.

        Kubernetes lets a server ignore ``limit`` ("servers may choose not to support the
        limit argument and will return all of the available results"), and for Tables this
        one does: ``kubectl get`` asks for pages of 500 but its client allows itself 5
        requests a second after a burst of 10, so 10,000 pods in 20 pages cost two seconds
        of kubectl waiting on itself, whatever the server does. The rows are still read
        from the store in pages of ``TABLE_PAGE`` (one snapshot, pinned by the continue
        token) and sent as each page comes, so neither side holds the whole list as one
        document. Plain JSON lists (informers, client libraries, ``-o json``) honour
        ``limit`` and ``continue``.
        """
        head = codec.table_head(kind, resource_version=first.resource_version)

        async def pages() -> AsyncIterator[list[Message]]:
            resp = first
            while True:
                yield [codec.object_msg(o) for o in resp.items]
                token = getattr(resp, "continue")
                if not token:
                    return
                setattr(lr, "continue", token)
                raw = await self.server.invoke("List", identity, lr)
                resp = api_pb2.ListResponse.FromString(raw)

        include = req.arg("includeObject", "Metadata")
        return Response(
            200, content_type=JSON, stream=codec.table_stream(kind, head, pages(), include)
        )

    def _watch(self, req: Request, identity: Identity, kind: Kind, ns: str) -> Response:
        wr = api_pb2.WatchRequest(
            kind=kind.name,
            namespace=ns,
            label_selector=req.arg("labelSelector"),
            field_selector=req.arg("fieldSelector"),
            resource_version=req.arg("resourceVersion"),
            allow_bookmarks=req.flag("allowWatchBookmarks"),
        )
        # Refused before the stream starts, so that the answer is an HTTP 403.
        self.server.authorize("Watch", identity, wr)
        table = codec.wants_table(req.headers.get("accept", ""))
        include = req.arg("includeObject", "Metadata")
        try:
            timeout = float(req.arg("timeoutSeconds") or 0) or None
        except ValueError as exc:
            raise BadRequest(
                f'timeoutSeconds "{req.arg("timeoutSeconds")}" is not a number'
            ) from exc
        events = self.server.watch(wr, lambda: identity)

        async def lines() -> AsyncIterator[bytes]:
            first = True
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout if timeout else None
            try:
                while True:
                    left = None if end is None else end - loop.time()
                    if left is not None and left <= 0:
                        return
                    try:
                        data = await asyncio.wait_for(events.__anext__(), left)
                    except (StopAsyncIteration, TimeoutError):
                        return
                    ev = api_pb2.WatchEvent.FromString(data)
                    msg = codec.object_msg(ev.object)
                    if ev.type == "BOOKMARK" or not table:
                        obj = codec.object_doc(msg)
                        obj.setdefault("kind", kind.name)
                        obj.setdefault("apiVersion", kind.api_version)
                    else:
                        obj = codec.table_doc(
                            kind,
                            [msg],
                            resource_version=ev.resource_version,
                            with_columns=first,
                            include_object=include,
                        )
                        first = False
                    yield codec.dumps({"type": ev.type, "object": obj}) + b"\n"
            except ApiError as exc:
                yield codec.dumps({"type": "ERROR", "object": of_error(exc)}) + b"\n"
            finally:
                await events.aclose()

        return Response(200, content_type=JSON, stream=lines())

    # -- writes -------------------------------------------------------------------------------

    def _message(self, doc: Any, kind: Kind, ns: str, name: str = "") -> Message:
        """The typed object of a request body for ``kind`` in ``ns``."""
        if not isinstance(doc, dict):
            raise BadRequest(f"the request body must be a {kind.name} object")
        doc.setdefault("kind", kind.name)
        doc.setdefault("apiVersion", kind.api_version)
        if doc.get("kind") != kind.name:
            raise BadRequest(
                f"the body is a {doc.get('kind')}, but the request is for {kind.plural}"
            )
        meta = doc.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request"
                )
            meta["namespace"] = ns
        if name and meta.get("name") and meta["name"] != name:
            raise BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if name:
            meta["name"] = name
        try:
            return convert.from_dict(doc)
        except ManifestError as exc:
            raise BadRequest(f"strict decoding error: {exc}") from exc

    async def _create(self, req: Request, identity: Identity, kind: Kind, ns: str) -> Response:
        msg = self._message(read_body(req), kind, ns)
        cr = api_pb2.CreateRequest(object=kinds.wrap(msg), dry_run=dry_run(req))
        raw = await self.server.invoke("Create", identity, cr)
        return ok(codec.object_doc(codec.object_msg(raw)), 201)

    async def _write(
        self, identity: Identity, msg: Message, *, method: str, dry_run: bool
    ) -> Message:
        ur = api_pb2.UpdateRequest(object=kinds.wrap(msg), dry_run=dry_run)
        fn = None
        if method != "Update" and method != "UpdateStatus":
            status = method == "PatchStatus"
            fn = lambda r: self.api.update(r, status=status)  # noqa: E731
        return codec.object_msg(await self.server.invoke(method, identity, ur, fn=fn))

    async def _update(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str, *, status: bool
    ) -> Response:
        msg = self._message(read_body(req), kind, ns, name)
        method = "UpdateStatus" if status else "Update"
        out = await self._write(identity, msg, method=method, dry_run=dry_run(req))
        return ok(codec.object_doc(out))

    async def _patch(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str, *, status: bool
    ) -> Response:
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
            raise UnsupportedMediaType(
                f'patch type "{ctype}" is not supported (use {MERGE_PATCH}, {JSON_PATCH}, '
                f"{STRATEGIC_PATCH} or {APPLY_PATCH})"
            )
        body = read_body(req)
        method = "PatchStatus" if status else "Patch"
        manager = req.arg("fieldManager")
        if ctype == APPLY_PATCH and not manager:
            raise BadRequest("fieldManager is required for apply requests")
        # Authorized before the object is read, so a caller who may not patch learns nothing.
        self.server.authorize(method, identity, named_update(kind, ns, name))
        for attempt in range(PATCH_RETRIES):
            gr = api_pb2.GetRequest(kind=kind.name, namespace=ns, name=name)
            try:
                current = codec.object_msg(await self.api.get(gr))
            except NotFound:
                if ctype != APPLY_PATCH or status:
                    raise
                # Server-side apply of a new object is a create (authorized as one).
                if isinstance(body, dict):
                    desc = kind.message.DESCRIPTOR
                    fieldowners.record(body, {manager: fieldowners.fields(body, desc)})
                msg = self._message(body, kind, ns, name)
                cr = api_pb2.CreateRequest(object=kinds.wrap(msg), dry_run=dry_run(req))
                raw = await self.server.invoke("Create", identity, cr)
                return ok(codec.object_doc(codec.object_msg(raw)), 201)
            doc = codec.object_doc(current)
            try:
                if ctype == APPLY_PATCH:
                    # Server-side apply: the applied configuration merged into the live
                    # object, with the field ownership of apply managers (fieldowners).
                    desc = kind.message.DESCRIPTOR
                    if not isinstance(body, dict):
                        raise BadRequest("an applied configuration must be an object")
                    merged = patch.strategic_merge(doc, body, desc)
                    patched = fieldowners.apply(
                        doc, body, merged, desc, manager, force=req.flag("force")
                    )
                elif ctype == MERGE_PATCH:
                    patched = patch.merge_patch(doc, body)
                elif ctype == JSON_PATCH:
                    patched = patch.json_patch(doc, body)
                else:
                    patched = patch.strategic_merge(doc, body, kind.message.DESCRIPTOR)
            except fieldowners.ConflictError as exc:
                raise Conflict(str(exc)) from exc
            except patch.PatchError as exc:
                if exc.test_failed:
                    raise Conflict(f'{kind.plural} "{name}": {exc}') from exc
                raise Invalid(f'{kind.plural} "{name}" is invalid: {exc}') from exc
            mine = _patch_sets_version(ctype, body)
            if not isinstance(patched, dict):
                raise BadRequest("the patched object is not an object")
            meta = patched.setdefault("metadata", {})
            if not mine:
                meta["resourceVersion"] = current.metadata.resource_version  # type: ignore[attr-defined]
            msg = self._message(patched, kind, ns, name)
            try:
                out = await self._write(identity, msg, method=method, dry_run=dry_run(req))
            except Conflict:
                if mine or attempt == PATCH_RETRIES - 1:
                    raise
                continue
            return ok(codec.object_doc(out))
        raise Conflict(f'{kind.plural} "{name}": too many concurrent changes; try again')

    async def _delete(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str
    ) -> Response:
        opts = read_body(req) if req.body else {}
        if not isinstance(opts, dict):
            raise BadRequest("DeleteOptions must be an object")
        dr = _delete_request(req, opts, kind, ns, name)
        resp: api_pb2.DeleteResponse = await self.server.invoke("Delete", identity, dr)
        if resp.HasField("object"):
            return ok(codec.object_doc(codec.object_msg(resp.object)))
        return ok(_success(kind, name))

    async def _delete_collection(
        self, req: Request, identity: Identity, kind: Kind, ns: str
    ) -> Response:
        lr = api_pb2.ListRequest(
            kind=kind.name,
            namespace=ns,
            label_selector=req.arg("labelSelector"),
            field_selector=req.arg("fieldSelector"),
        )
        resp = api_pb2.ListResponse.FromString(await self.server.invoke("List", identity, lr))
        opts = read_body(req) if req.body else {}
        if not isinstance(opts, dict):
            raise BadRequest("DeleteOptions must be an object")
        for item in resp.items:
            meta = codec.object_msg(item).metadata  # type: ignore[attr-defined]
            dr = _delete_request(req, opts, kind, meta.namespace, meta.name)
            try:
                await self.server.invoke("Delete", identity, dr)
            except NotFound:
                pass
        return ok(
            codec.list_doc(kind, api_pb2.ListResponse(resource_version=resp.resource_version))
        )


def _success(kind: Kind, name: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": kind.group, "kind": kind.plural},
    }


def _patch_sets_version(ctype: str, body: Any) -> bool:
    """Whether the patch itself names a resourceVersion (then it is the caller's precondition)."""
    if ctype == JSON_PATCH:
        return isinstance(body, list) and any(
            isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body
        )
    meta = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(meta, dict) and bool(meta.get("resourceVersion"))


def _delete_request(
    req: Request, opts: dict[str, Any], kind: Kind, ns: str, name: str
) -> api_pb2.DeleteRequest:
    pre = opts.get("preconditions") or {}
    dr = api_pb2.DeleteRequest(
        kind=kind.name,
        namespace=ns,
        name=name,
        preconditions=api_pb2.Preconditions(
            uid=str(pre.get("uid") or ""), resource_version=str(pre.get("resourceVersion") or "")
        ),
        propagation_policy=str(opts.get("propagationPolicy") or req.arg("propagationPolicy")),
        dry_run="All" in (opts.get("dryRun") or req.query.get("dryRun", [])),
    )
    grace = opts.get("gracePeriodSeconds", req.arg("gracePeriodSeconds") or None)
    if grace is not None:
        try:
            dr.grace_period_seconds = int(grace)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f'gracePeriodSeconds "{grace}" is not a number') from exc
    return dr
