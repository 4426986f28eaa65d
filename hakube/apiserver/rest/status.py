"""API errors as Kubernetes ``Status`` objects: the HTTP code and ``reason`` kubectl and the
client libraries key on (``Error from server (NotFound): ...``).

The HTTP code and reason of each error come from the same table as its gRPC code
(hakube.api.failures), so both doors report one failure the same way; ``Invalid`` messages that
name fields (``Pod "x" is invalid: spec.containers[0].image: ...``) carry them as causes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hakube.api import failures
from hakube.apiserver import errors
from hakube.apiserver.rest.http import Response


class BadRequest(errors.ApiError):
    """A request the REST door cannot read (malformed JSON, a bad query): 400 BadRequest."""

    failure = failures.BAD_REQUEST


class MethodNotAllowed(errors.ApiError):
    """A verb the REST door does not serve on that path: 405 MethodNotAllowed."""

    failure = failures.NOT_SERVED


class UnsupportedMediaType(errors.ApiError):
    """A body type the REST door does not read (e.g. a patch type): 415."""

    failure = failures.UNSUPPORTED_MEDIA_TYPE


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


_INVALID_OBJECT = re.compile(r'^([A-Z][A-Za-z]*) "([^"]*)" is invalid: ')


def of_error(
    exc: errors.ApiError, *, kind: str = "", name: str = "", group: str = ""
) -> dict[str, Any]:
    """The Status for an ApiError, with the kind and name of the object it concerns."""
    code, reason = exc.failure.http, exc.failure.reason
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if kind:
        details["kind"] = kind
    if group:
        details["group"] = group
    if exc.failure is failures.INVALID:
        named = _INVALID_OBJECT.match(exc.message)
        if named:
            # As Kubernetes: an Invalid names the object by its Kind and name (a create's path
            # has no name), which kubectl prints as 'The Deployment "web" is invalid: ...'.
            details["kind"], details["name"] = named.group(1), named.group(2)
        causes = failures.parse_causes(exc.message)
        if causes:
            details["causes"] = [
                {"reason": "FieldValueInvalid", "message": problem, "field": field}
                for field, problem in causes
            ]
    return status_doc(code, reason, exc.message, details)


def response(doc: dict[str, Any]) -> Response:
    return Response(int(doc["code"]), json.dumps(doc).encode())


def error_response(exc: errors.ApiError, **kw: str) -> Response:
    return response(of_error(exc, **kw))
