"""A small HTTP/1.1 server on asyncio streams, TLS only, for the Kubernetes REST API.

Why not a library: the API needs little of HTTP (requests with a Content-Length body, answers
with one, and chunked streams for watches and logs), and it must run on the master's own event
loop beside grpc.aio, where the object service and the watch hub live. asyncio streams give
that with no thread per connection and no new dependency.

Security: every connection is TLS with a client certificate verified against the cluster CA
(``hakube.pki.tls.server_context``); a client without one fails the handshake and never gets a
request in. The context is rebuilt when the master's certificate files change (renewal), and
each new handshake switches to the current one (in the SNI callback, which OpenSSL calls for
every ClientHello). HTTP/2 is not offered (ALPN
``http/1.1``), so Go clients such as kubectl speak HTTP/1.1.

Bounds: at most ``max_connections`` connections at once (more are closed at accept), a request
head of at most 64 KiB, a body of at most ``max_body`` bytes (413 otherwise), a handshake and
each request head within ``timeout`` seconds, an idle keep-alive connection closed after
``idle`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hakube.pki.tls import Reloading, TlsFiles, server_context

log = logging.getLogger("hakube.apiserver.rest")

MAX_HEAD = 64 * 1024
REASONS = {
    200: "OK",
    201: "Created",
    101: "Switching Protocols",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer_cert: bytes
    """The client's certificate (DER), verified against the cluster CA by the handshake; empty
    when it sent none (then only a bearer token can authenticate the request)."""

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return self.arg(name).lower() in ("1", "true")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None
    """When set, the body is sent chunked as the iterator yields (watches, log follows)."""
    upgrade: bool = False
    """A 101 Switching Protocols answer: ``stream`` is written as it is (WebSocket frames),
    then the connection ends."""


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves ``handler`` over HTTPS with client certificates; ``start`` binds, ``stop`` ends."""

    def __init__(
        self,
        handler: Handler,
        tls: TlsFiles,
        *,
        max_connections: int = 512,
        max_body: int = 3 * 1024 * 1024,
        timeout: float = 10.0,
        idle: float = 120.0,
    ) -> None:
        self.handler = handler
        self.context = Reloading(tls, _context)
        self.max_connections = max_connections
        self.max_body = max_body
        self.timeout = timeout
        self.idle = idle
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self, listen: str) -> int:
        """Bind ``HOST:PORT`` and serve; returns the bound port."""
        host, _, port = listen.rpartition(":")
        base = self.context.get()
        assert isinstance(base, ssl.SSLContext)
        base.sni_callback = self._pick_context
        self._server = await asyncio.start_server(
            self._accept,
            host.strip("[]") or None,
            int(port),
            limit=MAX_HEAD,
            ssl=base,
            ssl_handshake_timeout=self.timeout,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._conns):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._conns) >= self.max_connections or task is None:
            writer.close()
            return
        self._conns.add(task)
        try:
            ssl_obj = writer.get_extra_info("ssl_object")
            if ssl_obj is None:
                return
            # No certificate: the request must carry a bearer token (the handler decides).
            await self._serve(reader, writer, ssl_obj.getpeercert(binary_form=True) or b"")
        except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    def _pick_context(self, conn: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        """Called in each handshake (with or without SNI): the connection gets the context
        built from the current files, so a renewed certificate serves new connections."""
        current = self.context.get()
        if current is not ctx and isinstance(current, ssl.SSLContext):
            current.sni_callback = self._pick_context
            conn.context = current

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cert: bytes
    ) -> None:
        first = True
        while True:
            try:
                head = await asyncio.wait_for(
                    reader.readuntil(b"\r\n\r\n"), self.timeout if first else self.idle
                )
            except asyncio.LimitOverrunError:
                await _send(writer, Response(431, b"request head too large\n", "text/plain"))
                return
            first = False
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                await _send(writer, Response(400, b"malformed request line\n", "text/plain"))
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await _send(writer, Response(411, b"chunked request bodies are not accepted\n"))
                return
            try:
                size = int(headers.get("content-length", "0"))
            except ValueError:
                size = -1
            if size < 0 or size > self.max_body:
                await _send(
                    writer,
                    Response(413, b'{"message":"request body too large"}', headers={}),
                    close=True,
                )
                return
            body = await asyncio.wait_for(reader.readexactly(size), self.timeout) if size else b""
            url = urlsplit(target)
            req = Request(method, url.path, parse_qs(url.query), headers, body, cert)
            try:
                resp = await self.handler(req)
            except Exception:
                log.exception("REST %s %s failed", method, url.path)
                resp = Response(500, b'{"message":"internal error"}')
            keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            if not await _send(writer, resp, close=not keep, reader=reader):
                return
            if not keep:
                return


def _context(tls: TlsFiles) -> ssl.SSLContext:
    ctx = server_context(tls)
    # A client certificate is asked for and, when sent, verified against the cluster CA in the
    # handshake; without one the request must carry a ServiceAccount bearer token.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def _send(
    writer: asyncio.StreamWriter,
    resp: Response,
    *,
    close: bool = False,
    reader: asyncio.StreamReader | None = None,
) -> bool:
    """Write one response; False when the connection must end (after a stream: the client's
    next bytes, if any, would be a new request we do not wait for)."""
    head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}"]
    if not resp.upgrade:
        head.append(f"Content-Type: {resp.content_type}")
        head.append("Cache-Control: no-cache, private")
    for k, v in resp.headers.items():
        head.append(f"{k}: {v}")
    if resp.upgrade:
        pass
    elif resp.stream is None:
        head.append(f"Content-Length: {len(resp.body)}")
    else:
        head.append("Transfer-Encoding: chunked")
    if close and not resp.upgrade:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    if resp.stream is None:
        writer.write(resp.body)
        await writer.drain()
        return True
    stream = resp.stream

    async def pump() -> None:
        await writer.drain()
        async for chunk in stream:
            if chunk and resp.upgrade:
                writer.write(chunk)
                await writer.drain()
            elif chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        if not resp.upgrade:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    # A stream may be quiet for minutes: the client hanging up (EOF on the reader) ends it
    # at once instead of at the next event.
    tasks: set[asyncio.Future[Any]] = {asyncio.ensure_future(pump())}
    if reader is not None and not resp.upgrade:  # a WebSocket client may send frames
        tasks.add(asyncio.ensure_future(reader.read(1)))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    return False
