"""The console's alert source without a browser: Prometheus' answer summarised for the page,
settings that cannot work refused at start naming the flag, and a Prometheus that does not
answer (nothing listening, or not Prometheus) reported in one line."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from hakube.console.alerts import AlertSource, PrometheusSettings, summarise
from hakube.lifecycle import StartupError
from hakube.local.cluster import free_ports

pytestmark = pytest.mark.timeout(30)


def test_alerts_are_summarised_firing_first() -> None:
    data = {"alerts": [
        {"labels": {"alertname": "B", "severity": "warning", "name": "m1"}, "state": "pending",
         "annotations": {"summary": "b", "runbook_url": "docs/operations.md#b"},
         "activeAt": "2026-12-05T16:05:20.1Z"},
        {"labels": {"alertname": "A", "severity": "critical"}, "state": "firing",
         "annotations": {"summary": "a"}, "activeAt": "2026-12-05T16:00:00Z"},
    ]}  # fmt: skip
    got = summarise(data)
    assert [(a["name"], a["state"]) for a in got] == [("A", "firing"), ("B", "pending")]
    assert got[1] == {
        "name": "B", "state": "pending", "severity": "warning", "summary": "b",
        "since": "2026-12-05T16:05:20.1Z", "runbook": "docs/operations.md#b",
        "labels": {"name": "m1"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "flag"),
    [
        (PrometheusSettings("ftp://h:1"), "--prometheus-url"),
        (PrometheusSettings("localhost:9090"), "--prometheus-url"),
        (PrometheusSettings("http://h:1", ca_file="/ca"), "--prometheus-ca-file"),
        (PrometheusSettings("https://h:1", cert_file="/c"), "--prometheus-key-file"),
        (PrometheusSettings("https://h:1", ca_file="/nonexistent/ca"), "TLS material"),
        (PrometheusSettings("http://h:1", interval=0), "--prometheus-interval"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_flag(
    settings: PrometheusSettings, flag: str
) -> None:
    with pytest.raises(StartupError) as err:
        AlertSource(settings)
    assert flag in str(err.value)
    assert "\n" not in str(err.value)


@pytest.fixture
def not_prometheus() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_prometheus_that_does_not_answer_is_one_line(not_prometheus: str) -> None:
    for url in (f"http://127.0.0.1:{free_ports(1)[0]}", not_prometheus):
        src = AlertSource(PrometheusSettings(url, timeout=2))
        try:
            ev = src.ask()
        finally:
            src.stop()
        assert ev["configured"] is True and ev["reachable"] is False
        assert ev["error"].startswith(f"Prometheus at {url}/api/v1/alerts unreachable: ")
        assert "\n" not in ev["error"]
