"""The small HTTP endpoint every hakube process serves: /metrics, /healthz, and /readyz.

Prometheus scrapes /metrics; supervisors and keepalived's check ask /healthz and /readyz. Only
the master has a meaningful readiness (in a quorum with a leader); components without one
answer /readyz like /healthz.

Two ways to serve it, never a third: plain HTTP on a loopback address (the default; anything
else needs ``--allow-unauthenticated-metrics``), or HTTPS that requires a client certificate
from the cluster CA and lets only the identities ``authorize`` accepts read anything (see
docs/observability.md). The TLS handshake runs on the connection's own thread, so a client
that stalls it holds one thread for at most ``HANDSHAKE_TIMEOUT``, not the accept loop.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

from hakube.lifecycle import StartupError

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client gets to finish the TLS handshake and send its request."""


def new_registry() -> CollectorRegistry:
    """A registry for one process's metrics, with the process (CPU, memory, open files) and
    Python runtime (GC, version) collectors every hakube process exports. The client's
    ``*_created`` series are turned off (process-wide): Prometheus does not use them here and
    they would double every counter's and histogram's series."""
    disable_created_metrics()
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


class Children:
    """A labelled metric's children, each looked up once: ``labels()`` checks the values and
    takes a lock on every call, too slow for a per-request path. At most ``limit`` are kept;
    past that a child is looked up each time (still right, only slower)."""

    def __init__(self, metric: Any, limit: int = 4096) -> None:
        self._metric = metric
        self._limit = limit
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._metric.labels(*values)
            if len(self._cache) < self._limit:
                self._cache[values] = child
        return child


def is_loopback(host: str) -> bool:
    """Only this host can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MetricsSettings:
    """The metrics endpoint of a daemon (a settings group of ``hakube.settings``)."""

    metrics_listen: str = ""
    """HOST:PORT for /metrics, /healthz and /readyz (empty: off)."""
    allow_unauthenticated_metrics: bool = False
    """Serve those endpoints on a non-loopback --metrics-listen (plain HTTP, no
    authentication); without it only a loopback address is accepted."""

    def serve(
        self, registry: CollectorRegistry, what: str, **kw: Any
    ) -> ThreadingHTTPServer | None:
        """``serve_http`` as these settings say (None when off); a StartupError when the
        address cannot be used (``hakube.cli.main`` prints it)."""
        if not self.metrics_listen:
            return None
        return serve_http(
            self.metrics_listen,
            registry,
            what,
            remote_ok=self.allow_unauthenticated_metrics,
            **kw,
        )


def serve_http(
    listen: str,
    registry: CollectorRegistry,
    what: str,
    *,
    remote_ok: bool = False,
    ready: Callable[[], bool] | None = None,
    not_ready: bytes = b"not ready\n",
    tls: ssl.SSLContext | None = None,
    authorize: Callable[[bytes], str | None] | None = None,
) -> ThreadingHTTPServer:
    """Serve on ``listen`` (HOST:PORT; port 0 picks one) from a daemon thread.

    ``tls``: a server context that requires a client certificate (``hakube.pki.tls.
    server_context``); the endpoint is then HTTPS on any address. ``authorize(peer DER)``
    returns why that certificate may not read the endpoint (403), or None.

    StartupError with a one-line message naming ``what`` if the address cannot be used.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            ctype = "text/plain"
            refused = _refusal(self.connection, authorize)
            if refused is not None:
                body, code = refused.encode() + b"\n", 403
            elif self.path == "/metrics":
                body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                body, code = b"ok\n", 200
            elif self.path == "/readyz":
                ok = ready() if ready is not None else True
                body, code = (b"ok\n", 200) if ok else (not_ready, 503)
            else:
                body, code = b"not found\n", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    host, _, port = listen.rpartition(":")
    if tls is None and not remote_ok and not is_loopback(host):
        raise StartupError(
            f"{what}: --metrics-listen {listen} is not a loopback address: metrics "
            "and health are plain HTTP without authentication there; use "
            "--metrics-tls-listen for HTTPS with client certificates (or, where offered, "
            "--allow-unauthenticated-metrics to serve plain HTTP anyway)"
        )
    try:
        server = (
            _TlsServer((host.strip("[]"), int(port)), Handler, tls)
            if tls is not None
            else ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
        )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartupError(f"{what}: cannot listen on {listen} for metrics: {reason}") from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def _refusal(conn: Any, authorize: Callable[[bytes], str | None] | None) -> str | None:
    if authorize is None:
        return None
    der = conn.getpeercert(binary_form=True) if isinstance(conn, ssl.SSLSocket) else None
    return authorize(der) if der else "no client certificate"


class _TlsServer(ThreadingHTTPServer):
    """HTTPS: each connection's handshake (which demands a client certificate from the CA)
    runs on its own thread; a failed one closes the connection before a byte is read."""

    def __init__(self, address: tuple[str, int], handler: Any, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # plain HTTP, no certificate or a foreign CA: nothing is answered
        try:
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


class Heartbeats:
    """When each named loop or thread last showed it was alive. A process whose event loop or
    worker thread is wedged must not keep answering /readyz with 200 from the HTTP thread, which
    still runs: readiness asks ``stalled()`` too."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._last: dict[str, float] = {}

    def beat(self, name: str) -> None:
        """Called from the loop or thread ``name`` itself, at least every ``limit / 4``."""
        self._last[name] = self.clock()

    def stalled(self) -> dict[str, float]:
        """Names silent for longer than ``limit``, with how long (seconds)."""
        now = self.clock()
        return {n: now - t for n, t in list(self._last.items()) if now - t > self.limit}
