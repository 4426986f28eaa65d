"""POST ``/api/v1/namespaces/NS/serviceaccounts/NAME/token``: a TokenRequest
(authentication.k8s.io/v1) through ``ApiServer.invoke`` as the ``CreateToken`` method, so the
same authorization (RBAC ``create serviceaccounts/token``, the node authorizer) as on gRPC."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format

from hakube.api.v1 import token_pb2
from hakube.apiserver.rest.bodies import ok, read_body
from hakube.apiserver.rest.http import Request, Response
from hakube.apiserver.rest.status import BadRequest
from hakube.apiserver.server import ApiServer
from hakube.pki.certs import Identity

CreateToken = Callable[[token_pb2.CreateTokenRequest], Awaitable[token_pb2.TokenRequest]]


async def create_token(
    server: ApiServer,
    create: CreateToken,
    req: Request,
    identity: Identity,
    ns: str,
    name: str,
) -> Response:
    body = read_body(req)
    if not isinstance(body, dict):
        raise BadRequest("a TokenRequest body must be a JSON object")
    body = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")}
    tr = token_pb2.TokenRequest()
    try:
        json_format.ParseDict(body, tr)
    except json_format.ParseError as exc:
        raise BadRequest(f'TokenRequest for serviceaccounts "{name}": {exc}') from exc
    out = await server.invoke(
        "CreateToken",
        identity,
        token_pb2.CreateTokenRequest(namespace=ns, name=name, token_request=tr),
        create,
        lambda r: "ServiceAccount",
    )
    return ok(to_doc(out), 201)


def to_doc(tr: token_pb2.TokenRequest) -> dict[str, Any]:
    """A TokenRequest as Kubernetes writes it (integers as JSON numbers)."""
    doc = json_format.MessageToDict(tr)
    if tr.spec.HasField("expiration_seconds"):
        doc.setdefault("spec", {})["expirationSeconds"] = tr.spec.expiration_seconds
    return doc
