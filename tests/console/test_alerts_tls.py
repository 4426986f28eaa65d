"""The console asks an https Prometheus (``--prometheus-ca-file``, ``--prometheus-cert-file``)
and verifies it: a real Prometheus serving TLS and asking for client certificates of its CA
answers the console with the right material, and is reported unreachable -- nothing read from
it -- when the console does not trust its certificate, or has no certificate to show."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakube.console.alerts import AlertSource, PrometheusSettings
from hakube.pki import certs
from hakube.testing.prometheus import Prometheus
from tests.observability.conftest import need

pytestmark = pytest.mark.timeout(90)


def _pair(ca: certs.CA, d: Path, name: str, **kw: object) -> tuple[str, str]:
    cert, key = ca.issue_pair(certs.Identity(name), **kw)
    (d / f"{name}.crt").write_bytes(cert)
    (d / f"{name}.key").write_bytes(key)
    return str(d / f"{name}.crt"), str(d / f"{name}.key")


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Path]]:
    need("prometheus")
    d = tmp_path_factory.mktemp("prom-tls")
    ca_pem, ca_key = certs.create_ca("console-test-ca")
    (d / "ca.crt").write_bytes(ca_pem)
    ca = certs.CA.load(ca_pem, ca_key)
    srv_cert, srv_key = _pair(ca, d, "prometheus", server=True, client=False, hosts=("127.0.0.1",))
    cli_cert, cli_key = _pair(ca, d, "console")
    ready = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ready.load_cert_chain(cli_cert, cli_key)
    web = {"tls_server_config": {"cert_file": srv_cert, "key_file": srv_key,
                                 "client_auth_type": "RequireAndVerifyClientCert",
                                 "client_ca_file": str(d / "ca.crt")}}  # fmt: skip
    prom = Prometheus(str(d / "prom"), {"scrape_configs": []}, web_config=web, ready_context=ready)
    with prom:
        yield prom, d


def _ask(settings: PrometheusSettings) -> dict[str, object]:
    src = AlertSource(settings)
    try:
        return src.ask()
    finally:
        src.stop()


def test_an_https_prometheus_is_asked_with_the_ca_and_a_client_certificate(
    tls_prometheus: tuple[Prometheus, Path],
) -> None:
    prom, d = tls_prometheus
    ev = _ask(PrometheusSettings(prom.url, ca_file=str(d / "ca.crt"),
                                 cert_file=str(d / "console.crt"),
                                 key_file=str(d / "console.key")))  # fmt: skip
    assert ev["reachable"] is True, ev
    assert ev["alerts"] == []


def test_an_untrusted_or_unauthenticated_ask_reads_nothing(
    tls_prometheus: tuple[Prometheus, Path], tmp_path: Path
) -> None:
    prom, d = tls_prometheus
    other_pem, other_key = certs.create_ca("someone-else")
    (tmp_path / "other.crt").write_bytes(other_pem)
    cases = {
        "system trust store": PrometheusSettings(prom.url),
        "another CA": PrometheusSettings(prom.url, ca_file=str(tmp_path / "other.crt")),
        "no client certificate": PrometheusSettings(prom.url, ca_file=str(d / "ca.crt")),
    }
    for what, settings in cases.items():
        ev = _ask(settings)
        assert ev["reachable"] is False and "alerts" not in ev, what
        assert "unreachable" in str(ev["error"]), (what, ev)
    assert "CERTIFICATE_VERIFY_FAILED" in str(_ask(cases["another CA"])["error"])
