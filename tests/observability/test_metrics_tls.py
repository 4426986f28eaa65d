"""The HTTPS metrics endpoint (``--metrics-tls-listen``) lets only scrapers with a client
certificate of the cluster CA in group system:monitoring (or admins, or masters) read it: plain
HTTP, no certificate, a foreign CA and a cluster identity that is not a scraper are all refused
-- and a real Prometheus with the TLS material of ``hakube.local.monitoring`` scrapes it."""

from __future__ import annotations

import http.client
import os
import ssl
import uuid
from collections.abc import Iterator

import pytest

from hakube.agent.agent import Agent
from hakube.agent.config import AgentSettings
from hakube.httpendpoint import new_registry, serve_http
from hakube.lifecycle import Running, StartupError
from hakube.local.cluster import free_ports
from hakube.local.monitoring import JOBS, ScrapeTls, Target, prometheus_config
from hakube.pki.layout import Pki
from hakube.testing.cluster import LocalCluster
from hakube.testing.join import token_for
from hakube.testing.prometheus import Prometheus
from hakube.testing.wait import wait_for
from tests.observability.conftest import need

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    base = str(tmp_path_factory.mktemp("tls-metrics"))
    with LocalCluster(base, 1, extra_args=["--metrics-tls-listen", address]) as c:
        yield c, address


def _get(address: str, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    host, _, port = address.rpartition(":")
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
    else:
        conn = http.client.HTTPSConnection(host, int(port), timeout=5, context=context)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _context(pki: Pki, user: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_cert)
    ctx.check_hostname = False
    if user is not None:
        ctx.load_cert_chain(pki.user_cert(user), pki.user_key(user))
    return ctx


def test_the_prometheus_identity_reads_metrics_over_https(
    secured: tuple[LocalCluster, str],
) -> None:
    cluster, address = secured
    status, body = _get(address, _context(cluster.pki, "prometheus"))
    assert status == 200 and b"hakube_raft_term" in body
    status, body = _get(address, _context(cluster.pki, "admin"))
    assert status == 200 and b"hakube_raft_has_leader" in body


def test_plain_http_to_the_tls_port_gets_nothing(secured: tuple[LocalCluster, str]) -> None:
    _, address = secured
    with pytest.raises((http.client.HTTPException, OSError)):
        _get(address, None)


def test_a_client_without_a_certificate_is_refused_in_the_handshake(
    secured: tuple[LocalCluster, str],
) -> None:
    cluster, address = secured
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        _get(address, _context(cluster.pki, None))


def test_a_certificate_from_another_ca_is_refused(
    secured: tuple[LocalCluster, str], tmp_path: str
) -> None:
    cluster, address = secured
    other = Pki(os.path.join(str(tmp_path), "other"))
    other.init({})
    ctx = ssl.create_default_context(cafile=cluster.pki.ca_cert)
    ctx.check_hostname = False
    ctx.load_cert_chain(other.user_cert("prometheus"), other.user_key("prometheus"))
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        _get(address, ctx)


def test_a_cluster_identity_that_is_not_a_scraper_gets_403_and_no_metrics(
    secured: tuple[LocalCluster, str],
) -> None:
    cluster, address = secured
    status, body = _get(address, _context(cluster.pki, "scheduler"))
    assert status == 403
    assert b"hakube_" not in body and b"system:monitoring" in body


def test_plain_metrics_stay_loopback_only_by_default() -> None:
    """Without TLS, a non-loopback metrics address is refused with one line naming it."""
    with pytest.raises(StartupError) as exc:
        serve_http("0.0.0.0:0", new_registry(), "hakube agent n1")
    assert "0.0.0.0:0 is not a loopback address" in str(exc.value)
    assert "--metrics-tls-listen" in str(exc.value)


def test_a_real_prometheus_scrapes_the_https_endpoint_with_the_written_tls_material(
    secured: tuple[LocalCluster, str], tmp_path: str
) -> None:
    need("prometheus")
    cluster, address = secured
    pki = cluster.pki
    good = ScrapeTls(pki.ca_cert, pki.user_cert("prometheus"), pki.user_key("prometheus"))
    config = prometheus_config([Target(JOBS["master"], "m1", address)], tls=good)
    with Prometheus(os.path.join(str(tmp_path), "prom"), config) as prom:
        wait_for(lambda: prom.scalar('up{name="m1"}') == 1, 30, "the HTTPS target up")
        assert prom.scalar('hakube_raft_has_leader{name="m1"}') == 1


def test_an_agent_serves_https_metrics_with_its_node_certificate_to_scrapers_only(
    secured: tuple[LocalCluster, str], tmp_path: str
) -> None:
    cluster, _ = secured
    servers = cluster.endpoints()
    token, ca_hash = token_for(servers)
    settings = AgentSettings(
        node_name=f"tls-{uuid.uuid4().hex[:6]}",
        servers=tuple(servers),
        root_dir=os.path.join(str(tmp_path), "agent"),
        runtime="simulated",
        secret_volumes_on_disk=True,
        listen="127.0.0.1:0",
        node_ip="127.0.0.1",
        token=token,
        ca_cert_hash=ca_hash,
        metrics_tls_listen="127.0.0.1:0",
    )
    running = Running.start(Agent(settings))
    agent = running.service
    try:
        assert running.wait_ready(30), f"agent did not become ready: {running.error!r}"
        (port,) = agent.metrics_ports
        address = f"127.0.0.1:{port}"
        status, body = _get(address, _context(cluster.pki, "prometheus"))
        assert status == 200 and b"hakube_agent_running_pods" in body
        status, body = _get(address, _context(cluster.pki, "controller-manager"))
        assert status == 403 and b"hakube_" not in body
        with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
            _get(address, _context(cluster.pki, None))
        with pytest.raises((http.client.HTTPException, OSError)):
            _get(address, None)
    finally:
        running.stop(15)
