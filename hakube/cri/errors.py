"""Errors of the CRI client, wrapping gRPC's so callers never catch ``grpc.RpcError``.

Every error keeps the gRPC error as ``__cause__`` (``raise ... from e``) and its status code as
``code``, and names the CRI method and the object it was about::

    CriError                      any failed CRI call
     ├── RuntimeUnavailable       the runtime's socket is absent or not answering (UNAVAILABLE)
     ├── CallTimeout              the per-call deadline passed (DEADLINE_EXCEEDED)
     ├── NotFound                 no such sandbox / container / image (NOT_FOUND)
     └── ImagePullFailed          PullImage failed: unknown image, registry unreachable, ...

The agent's reactions differ per branch: retry later, retry with a longer deadline, forget the
object, or report ErrImagePull on the pod; everything else is a bug or a runtime failure to log.
"""

from __future__ import annotations

import grpc


class CriError(Exception):
    """A CRI call failed; ``code`` is the gRPC status code, ``method`` the CRI method."""

    def __init__(self, message: str, *, method: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message)
        self.method = method
        self.code = code


class RuntimeUnavailable(CriError):
    """The runtime could not be reached; retry once it is back."""


class CallTimeout(CriError):
    """The call did not finish within its deadline; its effect is unknown."""


class NotFound(CriError):
    """The sandbox, container or image named in the call does not exist."""


class ImagePullFailed(CriError):
    """The image could not be pulled (not in its registry, registry unreachable, bad name)."""

    def __init__(
        self, message: str, *, method: str, code: grpc.StatusCode | None, image: str
    ) -> None:
        super().__init__(message, method=method, code=code)
        self.image = image


def from_rpc_error(e: grpc.RpcError, *, method: str, subject: str) -> CriError:
    """Map a gRPC error of ``method`` about ``subject`` (e.g. "container abc") to a CriError."""
    code = e.code() if isinstance(e, grpc.Call) else None
    details = e.details() if isinstance(e, grpc.Call) else str(e)
    where = f"{method}({subject})" if subject else method
    message = f"{where}: {details} [{code.name if code else 'UNKNOWN'}]"
    if method == "PullImage" and code not in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
        return ImagePullFailed(message, method=method, code=code, image=subject)
    cls: type[CriError] = (
        {
            grpc.StatusCode.UNAVAILABLE: RuntimeUnavailable,
            grpc.StatusCode.DEADLINE_EXCEEDED: CallTimeout,
            grpc.StatusCode.NOT_FOUND: NotFound,
        }.get(code, CriError)
        if code is not None
        else CriError
    )
    return cls(message, method=method, code=code)
