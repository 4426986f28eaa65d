"""Alerts for the console's overview, read from Prometheus on the server side.

The browser never talks to Prometheus (the page's Content Security Policy allows only the
console itself, and Prometheus may want a client certificate the browser does not have): one
thread asks ``GET /api/v1/alerts`` every ``interval`` seconds while at least one page listens,
and hands each changed answer to the listening pages' event streams. One small request per
interval whatever the number of pages or the size of the cluster.

What a page receives (``{"kind": "alerts", "type": "ALERTS", ...}``):

* ``configured: false`` -- no ``--prometheus-url``; the page says how to configure it;
* ``reachable: false, error: "..."`` -- one line saying why Prometheus did not answer;
* ``alerts: [{name, state, severity, summary, since, runbook, labels}]`` -- pending and
  firing alerts, firing first.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hakube.lifecycle import StartupError
from hakube.settings import internal, setting

log = logging.getLogger("hakube.console.alerts")

KIND = "alerts"
"""The pseudo-kind a page asks for in ``watch?kinds=`` to get alerts on its stream."""

NOT_CONFIGURED: dict[str, Any] = {"kind": KIND, "type": "ALERTS", "configured": False}


@dataclass(frozen=True)
class PrometheusSettings:
    """Where the console reads alerts from (``hakube console``'s ``--prometheus-*`` flags)."""

    url: str = setting("", flag="prometheus-url", metavar="URL")
    """Prometheus to show firing and pending alerts from on the overview,
    http(s)://HOST:PORT[/prefix] (empty: no alerts shown)."""
    ca_file: str = setting("", flag="prometheus-ca-file", metavar="FILE")
    """CA bundle to verify an https Prometheus with (empty: the system's trust store)."""
    cert_file: str = setting("", flag="prometheus-cert-file", metavar="FILE")
    """Client certificate, for a Prometheus whose web config asks for one (with
    --prometheus-key-file)."""
    key_file: str = setting("", flag="prometheus-key-file", metavar="FILE")
    """Key of --prometheus-cert-file."""
    interval: float = setting(5.0, flag="prometheus-interval")
    """Seconds between two asks for alerts while a page is open."""
    timeout: float = internal(3.0)
    """Seconds one ask may take before Prometheus counts as unreachable."""


def ssl_context(s: PrometheusSettings) -> ssl.SSLContext | None:
    """The TLS context for ``s.url`` (None for http); a StartupError naming the flag for
    settings that cannot work."""
    if not s.interval > 0:
        raise StartupError(f"hakube console: --prometheus-interval {s.interval}: must be > 0")
    scheme = urlsplit(s.url).scheme
    if scheme not in ("http", "https") or not urlsplit(s.url).netloc:
        raise StartupError(f"hakube console: --prometheus-url {s.url!r}: want http(s)://HOST:PORT")
    if bool(s.cert_file) != bool(s.key_file):
        raise StartupError(
            "hakube console: --prometheus-cert-file and --prometheus-key-file go together"
        )
    if scheme == "http":
        if s.ca_file or s.cert_file:
            raise StartupError(
                "hakube console: --prometheus-ca-file/--prometheus-cert-file need an https "
                f"--prometheus-url (got {s.url})"
            )
        return None
    try:
        ctx = ssl.create_default_context(cafile=s.ca_file or None)
        if s.cert_file:
            ctx.load_cert_chain(s.cert_file, s.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"hakube console: Prometheus TLS material: {exc}") from exc
    return ctx


def summarise(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts of a ``/api/v1/alerts`` answer as the page shows them, firing first."""
    out = []
    for a in data.get("alerts") or []:
        labels = dict(a.get("labels") or {})
        notes = a.get("annotations") or {}
        out.append(
            {
                "name": labels.pop("alertname", "?"),
                "state": a.get("state", ""),
                "severity": labels.pop("severity", ""),
                "summary": notes.get("summary", ""),
                "since": a.get("activeAt", ""),
                "runbook": notes.get("runbook_url", ""),
                "labels": labels,
            }
        )
    out.sort(key=lambda x: (x["state"] != "firing", x["name"], sorted(x["labels"].items())))
    return out


class AlertSource:
    """Asks Prometheus for alerts while pages listen; ``subscribe`` gives a page's queue the
    latest answer at once and every changed one after."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self._ctx = ssl_context(settings)
        self._lock = threading.Lock()
        self._listeners: set[queue.Queue[Any]] = set()
        self._latest: dict[str, Any] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-alerts", daemon=True)
        self._thread.start()

    def subscribe(self, q: queue.Queue[Any]) -> None:
        with self._lock:
            self._listeners.add(q)
            latest = self._latest
        if latest is not None:
            q.put((KIND, latest))
        self._wake.set()

    def unsubscribe(self, q: queue.Queue[Any]) -> None:
        with self._lock:
            self._listeners.discard(q)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def ask(self) -> dict[str, Any]:
        """One ask; the event a page gets."""
        url = self.settings.url.rstrip("/") + "/api/v1/alerts"
        event: dict[str, Any] = {"kind": KIND, "type": "ALERTS", "configured": True}
        try:
            with urllib.request.urlopen(url, timeout=self.settings.timeout, context=self._ctx) as r:
                body = json.loads(r.read())
            if body.get("status") != "success":
                raise ValueError(f"answer status {body.get('status')!r}")
            event.update(reachable=True, alerts=summarise(body.get("data") or {}))
        except urllib.error.HTTPError as exc:
            event.update(reachable=False, error=f"Prometheus at {url} answered {exc.code}")
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            event.update(reachable=False, error=f"Prometheus at {url} unreachable: {reason}")
        return event

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                idle = not self._listeners
            if idle:
                self._wake.wait()
                self._wake.clear()
                continue
            event = self.ask()
            with self._lock:
                changed = event != self._latest
                self._latest = event
                listeners = list(self._listeners)
            if changed:
                for q in listeners:
                    try:
                        q.put_nowait((KIND, event))
                    except queue.Full:  # that page is far behind; its stream ends soon
                        log.debug("console alerts: a page's queue is full")
            self._wake.wait(self.settings.interval)
            self._wake.clear()
