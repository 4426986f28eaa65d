"""The client's exceptions: one small tree, each wrapping the gRPC error that caused it.

    HakubeError                 .message, .code (grpc.StatusCode or None)
    ├── NotFound                NOT_FOUND
    ├── AlreadyExists           ALREADY_EXISTS
    ├── Conflict                ABORTED: stale resourceVersion or failed precondition
    ├── Invalid                 INVALID_ARGUMENT; .field is the first field path, .causes all
    ├── Gone                    OUT_OF_RANGE: a revision the masters no longer keep; relist
    ├── TooLarge                RESOURCE_EXHAUSTED: the object is over the size limit
    ├── TooManyRequests         RESOURCE_EXHAUSTED with a retry hint: the master's priority
    │                           level stayed busy until the call's deadline; .retry_after
    ├── Forbidden               PERMISSION_DENIED / UNAUTHENTICATED
    ├── Unavailable             no master answered within the deadline; .endpoints were tried
    │   └── OutcomeUnknown      ... and a write may have been applied; .request_id lets the
    │                           caller retry it safely later (the store deduplicates by it)
    └── ServerError             any other status (INTERNAL, UNIMPLEMENTED, ...)

Which status becomes which class is the shared table in ``hakube.api.failures`` (the server's
errors and the REST door read the same one). Callers catch the hakube class and never need
``grpc``; the gRPC error stays reachable as
``__cause__`` (the client raises ``... from rpc_error``) for debugging.

``retried`` is set when the error came back on a retry that followed a possibly-applied
attempt. The client uses it to recognise its own earlier write (a Delete retried after a lost
answer finds nothing to delete) instead of reporting a confusing failure.
"""

from __future__ import annotations

import grpc

from hakube.api import failures


class HakubeError(Exception):
    """Base of every error the client raises."""

    code: grpc.StatusCode | None = None

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retried = False


class NotFound(HakubeError):
    code = failures.NOT_FOUND.code


class AlreadyExists(HakubeError):
    code = failures.ALREADY_EXISTS.code


class Conflict(HakubeError):
    code = failures.CONFLICT.code


class Invalid(HakubeError):
    """The server refused the object; ``field`` is the first offending field path, if named."""

    code = failures.INVALID.code

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message, code=code)
        self.causes: list[tuple[str, str]] = failures.parse_causes(message)
        self.field: str | None = self.causes[0][0] if self.causes else None


class Gone(HakubeError):
    code = failures.GONE.code


class TooLarge(HakubeError):
    code = failures.TOO_LARGE.code


class TooManyRequests(HakubeError):
    """The master refused the request for overload (API priority and fairness) and kept
    refusing until the call's deadline; nothing was applied. ``retry_after`` is its last hint."""

    code = failures.TOO_MANY_REQUESTS.code

    def __init__(
        self, message: str, *, retry_after: float = 0.0, code: grpc.StatusCode | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


RETRY_AFTER_KEY = failures.RETRY_AFTER_KEY


def retry_after(exc: grpc.RpcError) -> float | None:
    """The retry hint (seconds) of a flow-control refusal, None for any other error."""
    try:
        trailers = exc.trailing_metadata() or ()
    except Exception:  # an error raised before the call had trailers
        return None
    for key, value in trailers:
        if key == RETRY_AFTER_KEY:
            try:
                return max(0.0, int(value) / 1000)
            except ValueError:
                return None
    return None


class Forbidden(HakubeError):
    code = failures.FORBIDDEN.code


class Unavailable(HakubeError):
    """No master could serve the call before the deadline."""

    code = failures.UNAVAILABLE.code

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, endpoints: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, code=code)
        self.endpoints = endpoints


class OutcomeUnknown(Unavailable):
    """A write was sent but never confirmed: it may or may not have been applied.

    Retrying with the same ``request_id`` (every write method takes one) is safe: the store
    answers a repeated id with the first result.
    """

    def __init__(self, message: str, *, request_id: str, endpoints: tuple[str, ...] = ()) -> None:
        super().__init__(message, endpoints=endpoints)
        self.request_id = request_id


class ServerError(HakubeError):
    """A status the API does not use for ordinary failures (a server bug or a wrong address)."""


_CLASSES: dict[str, type[HakubeError]] = {
    cls.__name__: cls
    for cls in (NotFound, AlreadyExists, Conflict, Invalid, Gone, TooLarge, TooManyRequests)
    + (Forbidden, Unavailable, ServerError)
}


def _class_of(code: grpc.StatusCode) -> type[HakubeError]:
    """The exception a gRPC status becomes, as the shared table names it."""
    return _CLASSES[failures.of_code(code).client]


def from_rpc_error(exc: grpc.RpcError) -> HakubeError:
    """The hakube exception for a gRPC error (the caller raises it ``from exc``)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        hint = retry_after(exc)
        if hint is not None:
            return TooManyRequests(details, code=code, retry_after=hint)
    return from_code(code, details)


def from_code(code: grpc.StatusCode, message: str) -> HakubeError:
    """The hakube exception for a status code and its message (e.g. one item of a batch)."""
    return _class_of(code)(message, code=code)


parse_causes = failures.parse_causes
