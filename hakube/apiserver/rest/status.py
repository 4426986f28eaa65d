"""API errors as Kubernetes ``Status`` objects: the HTTP code and ``reason`` kubectl and the
client libraries key on (``Error from server (NotFound): ...``).

The mapping follows the gRPC one in hakube.apiserver.errors class by class, so both doors
report one failure the same way; ``Invalid`` messages that name a field
(``Pod "x" is invalid: spec.containers[0].image: ...``) also carry it as a cause.
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc

from hakube.apiserver import errors
from hakube.apiserver.rest.http import Response

_BY_CODE: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (422, "Invalid"),
    grpc.StatusCode.NOT_FOUND: (404, "NotFound"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "AlreadyExists"),
    grpc.StatusCode.ABORTED: (409, "Conflict"),
    grpc.StatusCode.OUT_OF_RANGE: (410, "Expired"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "TooManyRequests"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServiceUnavailable"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Forbidden"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "Unauthorized"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "BadRequest"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "Timeout"),
    grpc.StatusCode.INTERNAL: (500, "InternalError"),
}
_FIELD = re.compile(r" is invalid: ([A-Za-z0-9_.\[\]/-]+): (.*)$")


class BadRequest(errors.ApiError):
    """A request the REST door cannot read (malformed JSON, a bad query): 400 BadRequest."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class MethodNotAllowed(errors.ApiError):
    """A verb the REST door does not serve on that path: 405 MethodNotAllowed."""

    code = grpc.StatusCode.UNIMPLEMENTED


class UnsupportedMediaType(errors.ApiError):
    """A body type the REST door does not read (e.g. a patch type): 415."""

    code = grpc.StatusCode.UNIMPLEMENTED


def status_doc(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        doc["details"] = details
    return doc


def of_error(
    exc: errors.ApiError, *, kind: str = "", name: str = "", group: str = ""
) -> dict[str, Any]:
    """The Status for an ApiError, with the kind and name of the object it concerns."""
    if isinstance(exc, BadRequest):
        code, reason = 400, "BadRequest"
    elif isinstance(exc, MethodNotAllowed):
        code, reason = 405, "MethodNotAllowed"
    elif isinstance(exc, UnsupportedMediaType):
        code, reason = 415, "UnsupportedMediaType"
    elif isinstance(exc, errors.TooLarge):
        code, reason = 413, "RequestEntityTooLarge"
    else:
        code, reason = _BY_CODE.get(exc.code, (500, "InternalError"))
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if kind:
        details["kind"] = kind
    if group:
        details["group"] = group
    if reason == "Invalid":
        m = _FIELD.search(exc.message)
        if m:
            details["causes"] = [
                {"reason": "FieldValueInvalid", "message": m.group(2), "field": m.group(1)}
            ]
    return status_doc(code, reason, exc.message, details)


def response(doc: dict[str, Any]) -> Response:
    return Response(int(doc["code"]), json.dumps(doc).encode())


def error_response(exc: errors.ApiError, **kw: str) -> Response:
    return response(of_error(exc, **kw))
