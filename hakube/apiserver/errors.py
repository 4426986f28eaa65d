"""API errors raised by the server; their codes come from the shared table in hakube.api.failures.

ApiError (code, message)
├── Invalid            INVALID_ARGUMENT   message names the object and the field path
├── NotFound           NOT_FOUND
├── AlreadyExists      ALREADY_EXISTS
├── Conflict           ABORTED            stale resourceVersion / failed precondition
├── Gone               OUT_OF_RANGE       watch or continue from a compacted revision: relist
├── TooLarge           RESOURCE_EXHAUSTED object over the size limit
├── Unavailable        UNAVAILABLE        no quorum / no leader; nothing was written
├── Unknown outcome    UNAVAILABLE        with "outcome unknown": retry with the same request id
├── Forbidden          PERMISSION_DENIED  e.g. creating in a terminating namespace
├── Unauthenticated    UNAUTHENTICATED    no client certificate from the cluster CA
├── FailedPrecondition FAILED_PRECONDITION the cluster is not in a state that allows it
│                                         (e.g. a member removal that would lose quorum)
└── Internal           INTERNAL           a stored value this master cannot read (e.g. a
                                          Secret sealed with a key it does not have)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc

from hakube.api import failures
from hakube.store import errors as store_errors


class ApiError(Exception):
    """A failure the API reports; ``failure`` (from the shared table) gives its gRPC code, HTTP
    status and Kubernetes reason, ``code`` is the gRPC one."""

    failure: failures.Failure = failures.UNKNOWN
    code: grpc.StatusCode = failures.UNKNOWN.code

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = cls.failure.code

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ApiError):
    failure = failures.INVALID


class Unauthenticated(ApiError):
    failure = failures.UNAUTHENTICATED


class NotFound(ApiError):
    failure = failures.NOT_FOUND


class AlreadyExists(ApiError):
    failure = failures.ALREADY_EXISTS


class Conflict(ApiError):
    failure = failures.CONFLICT


class Gone(ApiError):
    failure = failures.GONE


class TooLarge(ApiError):
    failure = failures.TOO_LARGE


class Unavailable(ApiError):
    failure = failures.UNAVAILABLE


class Forbidden(ApiError):
    failure = failures.FORBIDDEN


class FailedPrecondition(ApiError):
    failure = failures.FAILED_PRECONDITION


class Internal(ApiError):
    failure = failures.INTERNAL


def from_store(exc: store_errors.StoreError) -> ApiError:
    """Translate a store failure, keeping its words."""
    if isinstance(exc, store_errors.OutcomeUnknown):
        return Unavailable(f"{exc} (outcome unknown: retry with the same request id)")
    return Unavailable(str(exc))


T = TypeVar("T")


async def relay(stream: AsyncIterator[T], ctx: grpc.aio.ServicerContext) -> AsyncIterator[T]:
    """A server stream's items passed on to a gRPC call; an ApiError ends the call with its
    status (the gRPC door of a stream that the REST door also serves)."""
    try:
        async for item in stream:
            yield item
    except ApiError as exc:
        # a flow-control refusal carries its retry hint (``trailers``) to the client
        await ctx.abort(exc.code, exc.message, trailing_metadata=getattr(exc, "trailers", ()))
