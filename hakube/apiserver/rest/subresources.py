"""The subresources of the Kubernetes REST API beyond status: scale, binding, log and exec,
and the access reviews of ``kubectl auth can-i``. A mixin of RestApi
(hakube.apiserver.rest.handlers); each verb is still an ``ApiServer.invoke`` of a method with
its own RBAC attributes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from hakube.api import kinds
from hakube.api.agent.v1 import agent_pb2
from hakube.api.columns import selector_text
from hakube.api.kinds import Kind
from hakube.api.v1 import api_pb2, authz_pb2
from hakube.apiserver.errors import ApiError, Conflict, Invalid
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.rest import codec, patch, routes, websocket
from hakube.apiserver.rest.bodies import JSON_PATCH, PATCH_RETRIES, dry_run, ok, read_body
from hakube.apiserver.rest.http import Request, Response
from hakube.apiserver.rest.status import BadRequest, MethodNotAllowed
from hakube.apiserver.server import ApiServer
from hakube.pki.certs import Identity


class Subresources:
    """scale, binding, log, exec and access reviews, for RestApi."""

    server: ApiServer
    api: ObjectAPI
    review: Callable[[authz_pb2.AccessReviewRequest], Awaitable[Any]] | None
    logs: Callable[..., AsyncGenerator[Any, None]] | None
    exec: Callable[[Any], Awaitable[Any]] | None

    async def _scale(
        self, req: Request, identity: Identity, kind: Kind, ns: str, name: str
    ) -> Response:
        body = read_body(req)
        method = "PatchScale" if req.method == "PATCH" else "UpdateScale"
        self.server.authorize(method, identity, named_update(kind, ns, name))
        for attempt in range(PATCH_RETRIES):
            current: Any = codec.object_msg(
                await self.api.get(api_pb2.GetRequest(kind=kind.name, namespace=ns, name=name))
            )
            scale = scale_doc(current)
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
            ur = api_pb2.UpdateRequest(object=kinds.wrap(current), dry_run=dry_run(req))
            try:
                out = codec.object_msg(await self.server.invoke(method, identity, ur, fn=fn))
            except Conflict:
                if mine or attempt == PATCH_RETRIES - 1:
                    raise
                continue
            return ok(scale_doc(out))
        raise Conflict(f'{kind.plural} "{name}": too many concurrent changes; try again')

    async def _bind(self, req: Request, identity: Identity, ns: str, name: str) -> Response:
        body = read_body(req)
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
        return ok(status_success(), 201)

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

    async def _review(self, req: Request, identity: Identity, route: routes.Route) -> Response:
        if req.method != "POST" or route.resource != "selfsubjectaccessreviews":
            raise MethodNotAllowed(f"{req.method} {route.resource} is not served")
        body = read_body(req)
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
        return ok(out, 201)


def status_success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def named_update(kind: Kind, ns: str, name: str) -> api_pb2.UpdateRequest:
    """An UpdateRequest naming an object, for authorizing before it is read."""
    msg: Any = kind.message()
    msg.metadata.name = name
    msg.metadata.namespace = ns
    return api_pb2.UpdateRequest(object=kinds.wrap(msg))


def scale_doc(obj: Any) -> dict[str, Any]:
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
