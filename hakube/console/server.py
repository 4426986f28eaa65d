"""The console's HTTP server: loopback only, one token per run, static pages from the package.

``GET /login?token=T`` sets the session cookie (HttpOnly, SameSite=Strict) and sends the
browser to ``/``; every other path wants that cookie. ``/console/api/...``:

* ``GET cluster``                          masters, leader, term, lag (``cluster_report``)
* ``GET list/<plural>[?namespace=]``       current objects
* ``GET watch?kinds=<plural>,...``          one event stream for them all: a snapshot of
  each, then every change (a browser opens only six connections to a host, so a page
  holds one stream, not one per kind); the pseudo-kind ``alerts`` adds Prometheus' alerts
  (``alerts.py``)
* ``GET logs/<ns>/<pod>[?container=]``     event stream of the log, followed
* ``POST action/<scale|restart|cordon|delete-pod>`` with a JSON body, and the header
  ``X-Hakube-Console: 1`` (a page of another site cannot send it without the browser asking)

Errors are ``{"error": "<one line>"}`` with the status of what the API said (403 when RBAC
refuses the user the console acts for).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hakube.client import Client, errors
from hakube.console import alerts, api
from hakube.httpendpoint import is_loopback
from hakube.lifecycle import StartupError

log = logging.getLogger("hakube.console")
COOKIE = "hakube_console"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
}
MAX_BODY = 64 * 1024


class Console:
    """``hakube console``, a ``hakube.lifecycle.Service``: ``run()`` serves until
    ``stop()``."""

    def __init__(
        self,
        client: Client,
        listen: str = "127.0.0.1:8001",
        prometheus: alerts.PrometheusSettings | None = None,
    ) -> None:
        host, _, port = listen.rpartition(":")
        if not is_loopback(host):
            raise StartupError(
                f"hakube console: --listen {listen}: the console acts with your credentials "
                "and serves loopback only (reach it remotely through an SSH tunnel)"
            )
        self.client = client
        self.alerts = (
            alerts.AlertSource(prometheus) if prometheus is not None and prometheus.url else None
        )
        self.token = secrets.token_urlsafe(24)
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._serving = False
        self._stop_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"console": self})
        try:
            self.httpd = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        except OSError as exc:
            raise StartupError(
                f"hakube console: cannot listen on {listen}: {exc.strerror}"
            ) from exc
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = str(self.httpd.server_address[0]), self.httpd.server_address[1]
        return f"http://{host}:{port}/login?token={self.token}"

    def run(self) -> None:
        """Serve until ``stop()`` (the socket is bound by the constructor)."""
        try:
            with self._stop_lock:  # a stop() sees either a server to shut down or none
                if self.stopping.is_set():
                    return
                self._serving = True
            self.ready.set()
            self.httpd.serve_forever(poll_interval=0.5)
        finally:
            self.httpd.server_close()

    def stop(self) -> None:
        """Idempotent, from any thread (not from a request handler: it waits for the loop)."""
        with self._stop_lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
            serving = self._serving
        if self.alerts is not None:
            self.alerts.stop()
        if serving:
            self.httpd.shutdown()
        else:
            self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    console: Console
    protocol_version = "HTTP/1.1"
    server_version = "hakube-console"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing -------------------------------------------------------------------------

    def _authorised(self) -> bool:
        jar = cookies.SimpleCookie(self.headers.get("Cookie", ""))
        got = jar[COOKIE].value if COOKIE in jar else ""
        return hmac.compare_digest(got, self.console.token)

    def _send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _events(self, stream: Iterator[Any]) -> None:
        """Server-Sent Events: one ``data:`` line of JSON per item, a comment for None."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        try:
            for item in stream:
                if self.console.stopping.is_set():
                    return
                data = (
                    b": idle\n\n"
                    if item is None or item == ""
                    else (b"data: " + json.dumps(item).encode() + b"\n\n")
                )
                self.wfile.write(data)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the page was closed
        except errors.HakubeError as exc:
            msg = json.dumps({"type": "ERROR", "message": exc.message}).encode()
            try:
                self.wfile.write(b"data: " + msg + b"\n\n")
            except OSError:
                pass

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/login":
            if not hmac.compare_digest(query.get("token", ""), self.console.token):
                self._error(403, "wrong or missing console token (see hakube console's output)")
                return
            self._send(
                303,
                b"",
                "text/plain",
                {
                    "Location": "/",
                    "Set-Cookie": f"{COOKIE}={self.console.token}; HttpOnly; SameSite=Strict; "
                    "Path=/",
                },
            )
            return
        if not self._authorised():
            self._error(401, "open the URL hakube console printed (it carries the token)")
            return
        if url.path in STATIC:
            name, ctype = STATIC[url.path]
            body = resources.files("hakube.console").joinpath("static", name).read_bytes()
            self._send(200, body, ctype)
            return
        parts = url.path.strip("/").split("/")
        if parts[:2] != ["console", "api"] or len(parts) < 3:
            self._error(404, f"no such page: {url.path}")
            return
        self._api_get(parts[2:], query)

    def _api_get(self, parts: list[str], query: dict[str, str]) -> None:
        client = self.console.client
        ns = query.get("namespace") or None
        try:
            if parts == ["cluster"]:
                self._json(200, api.cluster(client))
            elif len(parts) == 2 and parts[0] == "list":
                self._json(200, api.listing(client, parts[1], ns))
            elif parts == ["watch"]:
                plurals = [p for p in query.get("kinds", "").split(",") if p]
                for plural in plurals:
                    if plural != alerts.KIND:
                        api.kind_of(plural)  # a 404 before the stream starts
                self._events(
                    api.watch_events(
                        client, plurals, ns, self.console.stopping, self.console.alerts
                    )
                )
            elif len(parts) == 3 and parts[0] == "logs":
                lines = api.log_lines(client, parts[1], parts[2], query.get("container", ""), True)
                self._events({"line": chunk} if chunk else None for chunk in lines)
            else:
                self._error(404, f"no such API: {'/'.join(parts)}")
        except api.ApiError as exc:
            self._error(exc.status, exc.message)
        except errors.HakubeError as exc:
            self._error(api.http_status(exc), exc.message)

    def do_POST(self) -> None:
        if not self._authorised():
            self._error(401, "open the URL hakube console printed (it carries the token)")
            return
        if self.headers.get("X-Hakube-Console") != "1":
            self._error(403, "missing header X-Hakube-Console (requests come from the console)")
            return
        parts = urlsplit(self.path).path.strip("/").split("/")
        action = (
            api.ACTIONS.get(parts[3])
            if parts[:3] == ["console", "api", "action"] and len(parts) == 4
            else None
        )
        if action is None:
            self._error(404, f"no such action: {self.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._error(413, f"request body over {MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
            self._json(200, {"message": action(self.console.client, body)})
        except ValueError as exc:
            self._error(400, f"request body is not a JSON object: {exc}")
        except api.ApiError as exc:
            self._error(exc.status, exc.message)
        except errors.HakubeError as exc:
            self._error(api.http_status(exc), exc.message)
