"""Calls that reach a node agent through the masters (logs, exec, stats).

Such a call is not idempotent in general (an exec runs a command), so it is tried on the next
master only when the previous one could not be reached at all; any answer, or any failure
after the call reached a master, ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from hakube.client.client import Client
from hakube.client.errors import ServerError, Unavailable
from hakube.client.transport import Stubs, short_reason

T = TypeVar("T")


def through_masters(client: Client, fn: Callable[[Stubs], T], what: str) -> T:
    """``fn`` on the masters in turn until one is reached; ServerError naming ``what`` for a
    failure after that, Unavailable when none was reached."""
    transport = client.transport
    tried = []
    for _ in range(len(transport.endpoints)):
        ep = transport.current()
        try:
            return fn(transport.stubs(ep))
        except grpc.RpcError as e:
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            code = e.code() if isinstance(e, grpc.Call) else None
            d = (details or "").lower()
            if code != grpc.StatusCode.UNAVAILABLE or not (
                "failed to connect" in d or "connection refused" in d
            ):
                raise ServerError(f"{what}: {details}", code=code) from None
            tried.append(f"{ep}: {short_reason(details or '')}")
            transport.advance(ep)
    raise Unavailable(
        f"{what}: no master answered ({'; '.join(tried)})", endpoints=tuple(transport.endpoints)
    )
