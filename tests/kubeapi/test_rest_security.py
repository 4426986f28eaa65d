"""The Kubernetes REST API's door: HTTPS only, a client certificate from the cluster CA (or a
ServiceAccount bearer token: tests/security/test_serviceaccount_tokens.py), the same identities
as the gRPC API. Each test tries a way in without one and checks that no data
comes back."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

import pytest

from hakube.pki import certs
from hakube.pki.tls import Credentials
from hakube.testing.cluster import LocalCluster
from tests.kubeapi.conftest import Kubectl, rest_tls_context

pytestmark = pytest.mark.timeout(60)
ADMIN = certs.Identity("hakube-admin", ("system:masters",))


def _get(address: str, ctx: ssl.SSLContext, path: str = "/api/v1/namespaces") -> tuple[int, bytes]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_plain_http_gets_no_answer(cluster: LocalCluster) -> None:
    host, _, port = cluster.masters[0].k8s_api.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(4096)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert b"namespaces" not in data and not data.startswith(b"HTTP/1.1 200")


def test_a_client_without_a_certificate_or_a_token_is_unauthorized(
    cluster: LocalCluster,
) -> None:
    ctx = rest_tls_context(cluster.credentials.ca, None)
    code, body = _get(cluster.masters[0].k8s_api, ctx)
    status = json.loads(body)
    assert (code, status["reason"]) == (401, "Unauthorized")
    assert "items" not in status and "default" not in body.decode()


def test_a_certificate_from_another_ca_is_refused(cluster: LocalCluster) -> None:
    other = certs.CA.load(*certs.create_ca("another-ca"))
    ctx = rest_tls_context(cluster.credentials.ca, other.issue_pair(ADMIN))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _get(cluster.masters[0].k8s_api, ctx)


def test_kubectl_with_a_foreign_certificate_gets_nothing(
    cluster: LocalCluster,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    other = certs.CA.load(*certs.create_ca("another-ca"))
    cert, key = other.issue_pair(ADMIN)
    forged = Kubectl(
        cluster.kubeconfig(
            str(tmp_path / "forged"),
            credentials=Credentials(cluster.credentials.ca, cert, key),
        )
    )
    r = forged("get", "--raw", "/api/v1/namespaces", "--request-timeout=10s")
    assert r.returncode == 1 and "default" not in r.stdout
    assert "Unable to connect to the server" in r.stderr, r.stderr  # refused in the handshake


def test_the_cluster_ca_admin_is_served_and_errors_are_status_objects(
    cluster: LocalCluster,
) -> None:
    c = cluster.credentials
    ctx = rest_tls_context(c.ca, (c.cert, c.key))
    code, body = _get(cluster.masters[1].k8s_api, ctx)
    assert code == 200 and "default" in [i["metadata"]["name"] for i in json.loads(body)["items"]]
    code, body = _get(cluster.masters[1].k8s_api, ctx, "/api/v1/namespaces/default/pods/none")
    status = json.loads(body)
    assert (code, status["kind"], status["reason"], status["code"]) == (
        404,
        "Status",
        "NotFound",
        404,
    )
    assert status["details"] == {"name": "none", "kind": "pods"}


def test_a_request_without_credentials_is_refused_before_its_body_is_read(
    cluster: LocalCluster,
) -> None:
    """No certificate and no bearer token: 401 at once, without waiting for the body it
    announces (an anonymous peer cannot make a master buffer anything)."""
    host, _, port = cluster.masters[0].k8s_api.rpartition(":")
    ctx = rest_tls_context(cluster.credentials.ca, None)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(
                b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            )
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 401"), data[:200]
    assert b'"reason": "Unauthorized"' in data
