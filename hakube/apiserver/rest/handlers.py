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
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import yaml
from google.protobuf.message import Message

from hakube.api import convert, kinds
from hakube.api.agent.v1 import agent_pb2
from hakube.api.columns import selector_text
from hakube.api.convert import ManifestError
from hakube.api.kinds import Kind
from hakube.api.v1 import api_pb2, authz_pb2
from hakube.apiserver.authn import Authenticator
from hakube.apiserver.errors import ApiError, Conflict, Forbidden, Invalid, NotFound
from hakube.apiserver.rest import codec, k8sproto, openapi, patch, routes, websocket
from hakube.apiserver.rest.http import Request, Response
from hakube.apiserver.rest.status import (
    BadRequest,
    MethodNotAllowed,
    UnsupportedMediaType,
    error_response,
    of_error,
)
from hakube.apiserver.server import ApiServer
from hakube.pki.certs import Identity

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
PATCH_RETRIES = 5
"""Attempts of a patch whose base the object changed under (without a resourceVersion of the
caller's; with one, the first conflict is the caller's)."""


def _ok(doc: Any, status: int = 200) -> Response:
    return Response(status, codec.dumps(doc))


class RestApi:
    """Answers one HTTP request; ``handle`` is the HttpServer's handler."""

    def __init__(
        self,
        server: ApiServer,
        authenticator: Authenticator,
        *,
        review: Callable[[authz_pb2.AccessReviewRequest], Awaitable[Any]] | None = None,
        logs: Callable[..., AsyncGenerator[Any, None]] | None = None,
        exec_: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        self.server = server
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
            identity = self.authenticator.identify_certificate(
                ssl.DER_cert_to_PEM_cert(req.peer_cert).encode()
            )
        except ApiError as exc:
            return error_response(exc)
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

    async def _route(self, req: Request, identity: Identity) -> Response:
        path = req.path.rstrip("/") or "/"
        if req.method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                return _ok(doc)
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
                return _ok(_scale_doc(await self._fetch(identity, kind, ns, route.name)))
            if m in ("PUT", "PATCH"):
                return await self._scale(req, identity, kind, ns, route.name)
        elif sub == "binding" and kind.name == "Pod" and m == "POST":
            return await self._bind(req, identity, ns, route.name)
        elif sub == "log" and kind.name == "Pod" and m == "GET":
            return await self._logs(req, identity, ns, route.name)
        elif sub == "exec" and kind.name == "Pod" and m in ("GET", "POST"):
            return await self._exec(req, identity, ns, route.name)
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
            return _ok(
                codec.table_doc(
                    kind,
                    [msg],
                    resource_version=msg.metadata.resource_version,  # type: ignore[attr-defined]
                    include_object=req.arg("includeObject", "Metadata"),
                )
            )
        return _ok(codec.object_doc(msg))

    async def _list(self, req: Request, identity: Identity, kind: Kind, ns: str) -> Response:
        try:
            limit = int(req.arg("limit") or 0)
        except ValueError as exc:
            raise BadRequest(f'limit "{req.arg("limit")}" is not a number') from exc
        lr = api_pb2.ListRequest(
            kind=kind.name,
            namespace=ns,
            label_selector=req.arg("labelSelector"),
            field_selector=req.arg("fieldSelector"),
            limit=limit,
            serializable=req.arg("resourceVersion") == "0",
        )
        setattr(lr, "continue", req.arg("continue"))
        resp = api_pb2.ListResponse.FromString(await self.server.invoke("List", identity, lr))
        if codec.wants_table(req.headers.get("accept", "")):
            return _ok(
                codec.table_doc(
                    kind,
                    [codec.object_msg(o) for o in resp.items],
                    resource_version=resp.resource_version,
                    cont=getattr(resp, "continue"),
                    include_object=req.arg("includeObject", "Metadata"),
                )
            )
        return _ok(codec.list_doc(kind, resp))

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
        events = self.server.watch(wr, lambda: self.server.authorize("Watch", identity, wr))

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

    def _body(self, req: Request) -> Any:
        ctype = req.headers.get("content-type", JSON).split(";")[0].strip()
        if ctype == PROTOBUF:
            try:
                _, kind, raw = k8sproto.unwrap(req.body)
                if kind == "SelfSubjectAccessReview":
                    return k8sproto.self_subject_access_review(raw)
            except k8sproto.ProtoError as exc:
                raise BadRequest(f"the protobuf body does not decode: {exc}") from exc
            raise UnsupportedMediaType(
                f"{ctype} bodies are read for SelfSubjectAccessReview only: send application/json"
            )
        try:
            if ctype == APPLY_PATCH:
                # Server-side apply bodies are YAML (or JSON); aliases are refused, as a small
                # body of nested aliases would expand without bound once copied.
                return yaml.load(req.body, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
            return json.loads(req.body or b"null")
        except (ValueError, RecursionError, yaml.YAMLError) as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}") from exc

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
        msg = self._message(self._body(req), kind, ns)
        cr = api_pb2.CreateRequest(object=kinds.wrap(msg), dry_run=_dry_run(req))
        raw = await self.server.invoke("Create", identity, cr)
        return _ok(codec.object_doc(codec.object_msg(raw)), 201)

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
        msg = self._message(self._body(req), kind, ns, name)
        method = "UpdateStatus" if status else "Update"
        out = await self._write(identity, msg, method=method, dry_run=_dry_run(req))
        return _ok(codec.object_doc(out))

    async def _patch(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str, *, status: bool
    ) -> Response:
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
            raise UnsupportedMediaType(
                f'patch type "{ctype}" is not supported (use {MERGE_PATCH}, {JSON_PATCH}, '
                f"{STRATEGIC_PATCH} or {APPLY_PATCH})"
            )
        body = self._body(req)
        method = "PatchStatus" if status else "Patch"
        if ctype == APPLY_PATCH and not req.arg("fieldManager"):
            raise BadRequest("fieldManager is required for apply requests")
        # Authorized before the object is read, so a caller who may not patch learns nothing.
        self.server.authorize(method, identity, _named_update(kind, ns, name))
        for attempt in range(PATCH_RETRIES):
            gr = api_pb2.GetRequest(kind=kind.name, namespace=ns, name=name)
            try:
                current = codec.object_msg(await self.api.get(gr))
            except NotFound:
                if ctype != APPLY_PATCH or status:
                    raise
                # Server-side apply of a new object is a create (authorized as one).
                msg = self._message(body, kind, ns, name)
                cr = api_pb2.CreateRequest(object=kinds.wrap(msg), dry_run=_dry_run(req))
                raw = await self.server.invoke("Create", identity, cr)
                return _ok(codec.object_doc(codec.object_msg(raw)), 201)
            doc = codec.object_doc(current)
            try:
                if ctype == APPLY_PATCH:
                    # Server-side apply without field ownership: the applied configuration
                    # merged into the live object as a strategic merge patch (see the docs).
                    patched = patch.strategic_merge(doc, body, kind.message.DESCRIPTOR)
                elif ctype == MERGE_PATCH:
                    patched = patch.merge_patch(doc, body)
                elif ctype == JSON_PATCH:
                    patched = patch.json_patch(doc, body)
                else:
                    patched = patch.strategic_merge(doc, body, kind.message.DESCRIPTOR)
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
                out = await self._write(identity, msg, method=method, dry_run=_dry_run(req))
            except Conflict:
                if mine or attempt == PATCH_RETRIES - 1:
                    raise
                continue
            return _ok(codec.object_doc(out))
        raise Conflict(f'{kind.plural} "{name}": too many concurrent changes; try again')

    async def _scale(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str
    ) -> Response:
        body = self._body(req)
        method = "PatchScale" if req.method == "PATCH" else "UpdateScale"
        self.server.authorize(method, identity, _named_update(kind, ns, name))
        for attempt in range(PATCH_RETRIES):
            current: Any = codec.object_msg(
                await self.api.get(api_pb2.GetRequest(kind=kind.name, namespace=ns, name=name))
            )
            scale = _scale_doc(current)
            if req.method == "PATCH":
                ctype = req.headers.get("content-type", "").split(";")[0].strip()
                if ctype == JSON_PATCH:
                    scale = patch.json_patch(scale, body)
                else:
                    scale = patch.merge_patch(scale, body)
            else:
                scale = body
            try:
                replicas = int(scale["spec"]["replicas"])
            except (KeyError, TypeError, ValueError) as exc:
                raise Invalid(
                    f'Scale "{name}" is invalid: spec.replicas: a number is required'
                ) from exc
            rv = str(scale.get("metadata", {}).get("resourceVersion") or "")
            mine = req.method == "PUT" and bool(rv)
            if mine and rv != current.metadata.resource_version:
                raise Conflict(
                    f'Operation cannot be fulfilled on {kind.plural} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
            current.spec.replicas = replicas
            fn = lambda r: self.api.update(r, status=False)  # noqa: E731
            ur = api_pb2.UpdateRequest(object=kinds.wrap(current), dry_run=_dry_run(req))
            try:
                out = codec.object_msg(await self.server.invoke(method, identity, ur, fn=fn))
            except Conflict:
                if mine or attempt == PATCH_RETRIES - 1:
                    raise
                continue
            return _ok(_scale_doc(out))
        raise Conflict(f'{kind.plural} "{name}": too many concurrent changes; try again')

    async def _delete(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str
    ) -> Response:
        opts = self._body(req) if req.body else {}
        if not isinstance(opts, dict):
            raise BadRequest("DeleteOptions must be an object")
        dr = _delete_request(req, opts, kind, ns, name)
        resp: api_pb2.DeleteResponse = await self.server.invoke("Delete", identity, dr)
        if resp.HasField("object"):
            return _ok(codec.object_doc(codec.object_msg(resp.object)))
        return _ok(_success(kind, name))

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
        opts = self._body(req) if req.body else {}
        if not isinstance(opts, dict):
            raise BadRequest("DeleteOptions must be an object")
        for item in resp.items:
            meta = codec.object_msg(item).metadata  # type: ignore[attr-defined]
            dr = _delete_request(req, opts, kind, meta.namespace, meta.name)
            try:
                await self.server.invoke("Delete", identity, dr)
            except NotFound:
                pass
        return _ok(
            codec.list_doc(kind, api_pb2.ListResponse(resource_version=resp.resource_version))
        )

    async def _bind(self, req: Request, identity: Identity, ns: str, name: str) -> Response:
        body = self._body(req)
        target = body.get("target", {}) if isinstance(body, dict) else {}
        meta = body.get("metadata", {}) if isinstance(body, dict) else {}
        br = api_pb2.BindRequest(
            namespace=ns,
            name=name,
            node_name=str(target.get("name", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
        )
        await self.server.invoke("Bind", identity, br)
        return _ok(routes_status_success(), 201)

    # -- pods/log -----------------------------------------------------------------------------

    async def _logs(self, req: Request, identity: Identity, ns: str, name: str) -> Response:
        if self.logs is None:
            raise MethodNotAllowed("pods/log is not served by this master")
        try:
            tail = int(req.arg("tailLines") or -1)
        except ValueError as exc:
            raise BadRequest(f'tailLines "{req.arg("tailLines")}" is not a number') from exc
        lr = agent_pb2.LogsRequest(
            namespace=ns,
            pod=name,
            container=req.arg("container"),
            follow=req.flag("follow"),
            tail_lines=tail,
            previous=req.flag("previous"),
            timestamps=req.flag("timestamps"),
        )

        def admit() -> Identity:
            self.server.authorize("Logs", identity, lr)
            return identity

        chunks = self.logs(lr, admit)
        # The first chunk (or the refusal) before the answer's status line: a pod that does
        # not exist is a 404, not an empty 200.
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            return Response(200, b"", "text/plain")

        async def rest() -> AsyncIterator[bytes]:
            yield bytes(first.data)
            try:
                async for c in chunks:
                    yield bytes(c.data)
            except ApiError:
                return
            finally:
                await chunks.aclose()

        if not lr.follow:
            data = b"".join([x async for x in rest()])
            return Response(200, data, "text/plain")
        return Response(200, content_type="text/plain", stream=rest())

    # -- pods/exec ----------------------------------------------------------------------------

    async def _exec(self, req: Request, identity: Identity, ns: str, name: str) -> Response:
        if self.exec is None:
            raise MethodNotAllowed("pods/exec is not served by this master")
        if req.flag("stdin") or req.flag("tty"):
            raise BadRequest(
                "pods/exec runs commands without stdin or a terminal here (no -i/-t): "
                "hakube's node agents run a command to completion"
            )
        if req.headers.get("upgrade", "").lower() != "websocket":
            raise BadRequest(
                "pods/exec is served over WebSocket (v5.channel.k8s.io) only, not SPDY: use "
                "kubectl 1.30 or newer, or hakubectl exec"
            )
        protocol = websocket.pick_protocol(req.headers.get("sec-websocket-protocol", ""))
        if protocol is None:
            raise BadRequest(
                f"pods/exec speaks the subprotocols {', '.join(websocket.PROTOCOLS)} only"
            )
        er = agent_pb2.ExecRequest(
            namespace=ns,
            pod=name,
            container=req.arg("container"),
            command=req.query.get("command", []),
        )
        out = await self.server.invoke("ProxyExec", identity, er, fn=self.exec)

        async def frames() -> AsyncIterator[bytes]:
            if out.stdout:
                yield websocket.channel(websocket.STDOUT, bytes(out.stdout))
            if out.stderr:
                yield websocket.channel(websocket.STDERR, bytes(out.stderr))
            yield websocket.exit_status(out.exit_code)
            yield websocket.close()

        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": websocket.accept_key(req.headers.get("sec-websocket-key", "")),
            "Sec-WebSocket-Protocol": protocol,
        }
        return Response(101, headers=headers, stream=frames(), upgrade=True)

    # -- authorization reviews ----------------------------------------------------------------

    async def _review(self, req: Request, identity: Identity, route: routes.Route) -> Response:
        if req.method != "POST" or route.resource != "selfsubjectaccessreviews":
            raise MethodNotAllowed(f"{req.method} {route.resource} is not served")
        body = self._body(req)
        spec = body.get("spec", {}) if isinstance(body, dict) else {}
        ra = spec.get("resourceAttributes") or {}
        if self.review is None or not ra:
            raise BadRequest("only resourceAttributes reviews are served")
        ar = authz_pb2.AccessReviewRequest(
            attributes=authz_pb2.ResourceAttributes(
                verb=str(ra.get("verb", "")),
                group=str(ra.get("group", "")),
                resource=str(ra.get("resource", "")),
                subresource=str(ra.get("subresource", "")),
                namespace=str(ra.get("namespace", "")),
                name=str(ra.get("name", "")),
            )
        )
        verdict = await self.server.invoke("AccessReview", identity, ar, fn=self.review)
        out = dict(body)
        out["status"] = {"allowed": bool(verdict.allowed), "reason": verdict.reason}
        if not verdict.allowed:
            out["status"]["denied"] = False
        return _ok(out, 201)


def routes_status_success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _success(kind: Kind, name: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": kind.group, "kind": kind.plural},
    }


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (``*name``)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted")
        return super().compose_node(parent, index)


def _dry_run(req: Request) -> bool:
    return "All" in req.query.get("dryRun", [])


def _patch_sets_version(ctype: str, body: Any) -> bool:
    """Whether the patch itself names a resourceVersion (then it is the caller's precondition)."""
    if ctype == JSON_PATCH:
        return isinstance(body, list) and any(
            isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body
        )
    meta = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(meta, dict) and bool(meta.get("resourceVersion"))


def _named_update(kind: Kind, ns: str, name: str) -> api_pb2.UpdateRequest:
    """An UpdateRequest naming an object, for authorizing before it is read."""
    msg: Any = kind.message()
    msg.metadata.name = name
    msg.metadata.namespace = ns
    return api_pb2.UpdateRequest(object=kinds.wrap(msg))


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


def _scale_doc(obj: Any) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment, ReplicaSet or StatefulSet."""
    meta = obj.metadata
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
            "creationTimestamp": meta.creation_timestamp,
        },
        "spec": {"replicas": obj.spec.replicas if obj.spec.HasField("replicas") else 1},
        "status": {
            "replicas": obj.status.replicas,
            "selector": selector_text(obj.spec.selector).replace("<none>", ""),
        },
    }
