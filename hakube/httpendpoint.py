"""The small HTTP endpoint every hakube process serves: /metrics, /healthz, and /readyz.

Prometheus scrapes /metrics; supervisors and keepalived's check ask /healthz and /readyz. Only
the master has a meaningful readiness (in a quorum with a leader); components without one
answer /readyz like /healthz.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hakube.lifecycle import StartupError


def is_loopback(host: str) -> bool:
    """Only this host can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_http(
    listen: str,
    registry: CollectorRegistry,
    what: str,
    *,
    remote_ok: bool = False,
    ready: Callable[[], bool] | None = None,
    not_ready: bytes = b"not ready\n",
) -> ThreadingHTTPServer:
    """Serve on ``listen`` (HOST:PORT; port 0 picks one) from a daemon thread.

    StartupError with a one-line message naming ``what`` if the address cannot be used.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            ctype = "text/plain"
            if self.path == "/metrics":
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
    if not remote_ok and not is_loopback(host):
        raise StartupError(
            f"{what}: --metrics-listen {listen} is not a loopback address: metrics "
            "and health are plain HTTP without authentication; pass "
            "--allow-unauthenticated-metrics to serve them there anyway"
        )
    try:
        server = ThreadingHTTPServer((host, int(port)), Handler)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartupError(f"{what}: cannot listen on {listen} for metrics: {reason}") from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


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
