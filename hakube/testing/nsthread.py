"""Threads inside network namespaces: sockets and servers a test owns, without a process each.

A network namespace is a property of a thread (``setns(2)`` with CLONE_NEWNET is allowed in a
threaded process), and a socket stays in the namespace it was made in, whichever thread uses
it later. So a test can:

* :func:`call_in` -- run a function (an HTTP request, ``nft``: children inherit the thread's
  namespace) inside a namespace and get its result;
* :class:`HttpServer` -- serve HTTP inside a namespace (answering with its own name, so a test
  sees which backend served it);
* :class:`Forward` -- make the host's loopback services (the test's masters) reachable at the
  same ``127.0.0.1:PORT`` inside a namespace, so processes there verify the masters'
  certificates (which name 127.0.0.1) and reach nothing else of the host.

Everything here is closed by its ``close()`` (or context manager); the threads are daemons.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter(netns: str) -> None:
    fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in(netns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a new thread inside ``netns``; its result or its exception."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            _enter(netns)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=body, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


def http_get(host: str, port: int, *, path: str = "/", timeout: float = 2.0) -> str:
    """GET ``http://host:port/path`` (the caller's namespace); the body, OSError on failure."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            raise OSError(f"http://{host}:{port}{path}: status {resp.status}")
        return body
    finally:
        conn.close()


class HttpServer:
    """An HTTP server inside ``netns`` on ``address:port``, answering ``<name>\\n``."""

    def __init__(self, netns: str, name: str, address: str, port: int) -> None:
        self.name = name
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.hits += 1
                body = f"{name}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = call_in(netns, ThreadingHTTPServer, (address, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Forward:
    """Listen on ``127.0.0.1:port`` inside ``netns`` for each port, and relay every connection
    to the same port on the host's loopback."""

    def __init__(self, netns: str, ports: list[int]) -> None:
        self._closed = threading.Event()
        self._socks: list[socket.socket] = []
        for port in ports:
            s = call_in(netns, socket.create_server, ("127.0.0.1", port))
            self._socks.append(s)
            threading.Thread(target=self._accept, args=(s, port), daemon=True).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self._closed.is_set():
            try:
                inner, _ = listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()

    def close(self) -> None:
        self._closed.set()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
