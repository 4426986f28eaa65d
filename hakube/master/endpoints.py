"""A master's /metrics, /healthz and /readyz: plain HTTP (loopback unless the user chose
otherwise) and HTTPS with this master's certificate, for scraping from other hosts (a client
certificate of the cluster CA in group system:monitoring, an admin's or a master's)."""

from __future__ import annotations

from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from hakube.httpendpoint import serve_http
from hakube.master.settings import MasterSettings
from hakube.pki.tls import TlsFiles, scrape_refusal, server_context


class HealthEndpoints:
    """Started with ``start`` (``StartupError`` if an address cannot be used); ``close``."""

    def __init__(self) -> None:
        self._servers: list[ThreadingHTTPServer] = []
        self.metrics_port = 0
        self.metrics_tls_port = 0

    def start(
        self,
        s: MasterSettings,
        registry: CollectorRegistry,
        tls: TlsFiles,
        ready: Callable[[], bool],
    ) -> None:
        common: dict[str, Any] = {
            "ready": ready,
            "not_ready": b"not ready: no quorum with a leader\n",
        }
        if s.metrics_listen:
            http = serve_http(
                s.metrics_listen,
                registry,
                "hakube master",
                remote_ok=s.metrics_remote_ok,
                **common,
            )
            self._servers.append(http)
            self.metrics_port = http.server_address[1]
        if s.metrics_tls_listen:
            https = serve_http(
                s.metrics_tls_listen,
                registry,
                "hakube master",
                tls=server_context(tls),
                authorize=scrape_refusal,
                **common,
            )
            self._servers.append(https)
            self.metrics_tls_port = https.server_address[1]

    def close(self) -> None:
        for http in self._servers:
            http.shutdown()
            http.server_close()
        self._servers.clear()
