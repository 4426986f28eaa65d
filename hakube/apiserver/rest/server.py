"""The Kubernetes REST door of one master: an HttpServer serving RestApi.

Constructed with the master's ApiServer (whose authorization, object service and watch hub
it calls), its Authenticator (client certificates from the cluster CA, ServiceAccount bearer
tokens), and its TLS material; ``start`` binds, ``stop`` is idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from hakube.apiserver.authn import Authenticator
from hakube.apiserver.rest.handlers import RestApi
from hakube.apiserver.rest.http import HttpServer
from hakube.apiserver.server import MAX_REQUEST_BYTES, ApiServer
from hakube.pki.tls import TlsFiles


def default_listen(api_listen: str) -> str:
    """The REST API's address when none is given: the gRPC API's host, port + 1 (6444 beside
    the default 6443); a port chosen by the system (0) for a gRPC API on port 0."""
    host, _, port = api_listen.rpartition(":")
    return f"{host}:{int(port) + 1 if int(port) else 0}"


class RestServer:
    def __init__(
        self,
        server: ApiServer,
        authenticator: Authenticator,
        tls: TlsFiles,
        *,
        review: Callable[[Any], Awaitable[Any]] | None = None,
        logs: Callable[..., AsyncGenerator[Any, None]] | None = None,
        exec_: Callable[[Any], Awaitable[Any]] | None = None,
        create_token: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        self.api = RestApi(
            server,
            authenticator,
            review=review,
            logs=logs,
            exec_=exec_,
            create_token=create_token,
        )
        self.http = HttpServer(self.api.handle, tls, max_body=MAX_REQUEST_BYTES)

    async def start(self, listen: str) -> int:
        return await self.http.start(listen)

    async def stop(self) -> None:
        await self.http.stop()
