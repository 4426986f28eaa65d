"""How the API says a request failed: one table for both doors and for the client.

Each kind of failure has a gRPC status code (the gRPC API), an HTTP status and a Kubernetes
``Status.reason`` (the REST door), and the client exception it becomes. The server's error
classes (``hakube.apiserver.errors``), the REST door's ``Status`` objects
(``hakube.apiserver.rest.status``) and the client's exceptions (``hakube.client.errors``) all
read their codes from here, so one failure is reported the same way through every door, and a
new one is added in one place.

Messages follow Kubernetes' wording where clients parse them: an invalid object is
``<Kind> "<name>" is invalid: <field>: <problem>; <field>: <problem>`` (``parse_causes``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class Failure:
    """One kind of failure as each door spells it."""

    code: grpc.StatusCode
    http: int
    reason: str
    """Kubernetes ``Status.reason``: what kubectl prints (``Error from server (NotFound)``)."""
    client: str
    """The name of the client exception (``hakube.client.errors``) it becomes."""


# The first failure listed for a gRPC code is what a bare gRPC status of that code means.
INVALID = Failure(grpc.StatusCode.INVALID_ARGUMENT, 422, "Invalid", "Invalid")
"""The object breaks a rule; the message names the object and the field path."""
BAD_REQUEST = Failure(grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest", "Invalid")
"""A request that cannot be read at all (malformed body or query)."""
NOT_FOUND = Failure(grpc.StatusCode.NOT_FOUND, 404, "NotFound", "NotFound")
ALREADY_EXISTS = Failure(grpc.StatusCode.ALREADY_EXISTS, 409, "AlreadyExists", "AlreadyExists")
CONFLICT = Failure(grpc.StatusCode.ABORTED, 409, "Conflict", "Conflict")
"""A stale resourceVersion or a failed precondition on the object."""
GONE = Failure(grpc.StatusCode.OUT_OF_RANGE, 410, "Expired", "Gone")
"""A watch or a ``continue`` from a revision the masters no longer keep: relist."""
TOO_LARGE = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "RequestEntityTooLarge", "TooLarge")
"""An object, request or response over a size limit, or the store over its quota."""
TOO_MANY_REQUESTS = Failure(
    grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "TooManyRequests", "TooManyRequests"
)
"""Refused by flow control; gRPC carries the retry hint as ``RETRY_AFTER_KEY`` metadata."""
UNAVAILABLE = Failure(grpc.StatusCode.UNAVAILABLE, 503, "ServiceUnavailable", "Unavailable")
"""No quorum or no leader: nothing was written (or, when the message says so, maybe)."""
FORBIDDEN = Failure(grpc.StatusCode.PERMISSION_DENIED, 403, "Forbidden", "Forbidden")
UNAUTHENTICATED = Failure(grpc.StatusCode.UNAUTHENTICATED, 401, "Unauthorized", "Forbidden")
FAILED_PRECONDITION = Failure(grpc.StatusCode.FAILED_PRECONDITION, 400, "BadRequest", "Conflict")
"""The cluster is not in a state that allows it (e.g. a member removal that would lose quorum)."""
TIMEOUT = Failure(grpc.StatusCode.DEADLINE_EXCEEDED, 504, "Timeout", "ServerError")
INTERNAL = Failure(grpc.StatusCode.INTERNAL, 500, "InternalError", "ServerError")
"""E.g. a stored value this master cannot read (a Secret sealed with a key it does not have)."""
NOT_SERVED = Failure(grpc.StatusCode.UNIMPLEMENTED, 405, "MethodNotAllowed", "ServerError")
UNSUPPORTED_MEDIA_TYPE = Failure(
    grpc.StatusCode.UNIMPLEMENTED, 415, "UnsupportedMediaType", "ServerError"
)
UNKNOWN = Failure(grpc.StatusCode.UNKNOWN, 500, "InternalError", "ServerError")

TABLE: tuple[Failure, ...] = (
    INVALID,
    BAD_REQUEST,
    NOT_FOUND,
    ALREADY_EXISTS,
    CONFLICT,
    GONE,
    TOO_LARGE,
    TOO_MANY_REQUESTS,
    UNAVAILABLE,
    FORBIDDEN,
    UNAUTHENTICATED,
    FAILED_PRECONDITION,
    TIMEOUT,
    INTERNAL,
    NOT_SERVED,
    UNSUPPORTED_MEDIA_TYPE,
    UNKNOWN,
)
BY_CODE: dict[grpc.StatusCode, Failure] = {}
for _f in TABLE:
    BY_CODE.setdefault(_f.code, _f)


def of_code(code: grpc.StatusCode) -> Failure:
    """What a bare gRPC status means (UNKNOWN for a code the API never sends)."""
    return BY_CODE.get(code, UNKNOWN)


RETRY_AFTER_KEY = "retry-after-ms"
"""Trailing metadata of a flow-control refusal: milliseconds to wait before retrying."""

WARNING_KEY = "warning"
"""Trailing metadata of an accepted write: one value per warning for its author (see
docs/api.md, Warnings)."""

_INVALID = re.compile(r" is invalid: (.*)$")
_CAUSE = re.compile(r"^\s*([A-Za-z][\w.\[\]/-]*): (.+)$")


def parse_causes(message: str) -> list[tuple[str, str]]:
    """``Pod "web" is invalid: spec.x: bad; metadata.name: required`` -> [(path, problem)...]."""
    m = _INVALID.search(message)
    if not m:
        return []
    text = re.sub(r" \(and \d+ more\)$", "", m.group(1))
    out = []
    for part in text.split("; "):
        c = _CAUSE.match(part)
        if c:
            out.append((c.group(1), c.group(2)))
    return out
