"""The API's door: TLS only, a client certificate from the cluster CA, the master verified.

Each test tries an attack or a mistake against a real master and checks that no data comes back
and the cluster is unchanged; the client's own checks give one line before any connection.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.apiserver.authn import Authenticator
from hakube.client import Client, Forbidden, Unavailable
from hakube.pki import certs
from hakube.pki.layout import Pki
from hakube.pki.tls import Credentials, channel_credentials, server_credentials
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)
ADMIN = certs.Identity("hakube-admin", ("system:masters",))


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    return masters3


def _list_namespaces(endpoint: str, creds: grpc.ChannelCredentials | None) -> object:
    ch = grpc.secure_channel(endpoint, creds) if creds else grpc.insecure_channel(endpoint)
    with ch:
        return api_pb2_grpc.ObjectServiceStub(ch).List(
            api_pb2.ListRequest(kind="Namespace"), timeout=5
        )


def test_a_plaintext_client_gets_an_error_and_no_data(cluster: LocalCluster) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _list_namespaces(cluster.endpoints()[0], None)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_tls_client_without_a_certificate_is_refused(cluster: LocalCluster) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=cluster.credentials.ca)
    with pytest.raises(grpc.RpcError) as err:
        _list_namespaces(cluster.endpoints()[0], creds)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused_by_the_master(cluster: LocalCluster) -> None:
    other = certs.CA.load(*certs.create_ca("another-ca"))
    cert, key = other.issue_pair(ADMIN)
    creds = grpc.ssl_channel_credentials(cluster.credentials.ca, key, cert)
    with pytest.raises(grpc.RpcError) as err:
        _list_namespaces(cluster.endpoints()[0], creds)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # ...and the client says so itself, in one line, before connecting.
    with pytest.raises(Forbidden, match="not issued by the cluster CA"):
        Client(cluster.endpoints(), credentials=Credentials(cluster.credentials.ca, cert, key))


def test_an_expired_certificate_is_a_clear_error(cluster: LocalCluster) -> None:
    ca = cluster.pki.load_ca()
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    cert, key = ca.issue_pair(ADMIN, now=past, days=1)
    with pytest.raises(Forbidden, match=r'client certificate of "hakube-admin" expired at'):
        Client(cluster.endpoints(), credentials=Credentials(cluster.credentials.ca, cert, key))
    with pytest.raises(grpc.RpcError):  # the master refuses it too
        _list_namespaces(
            cluster.endpoints()[0], grpc.ssl_channel_credentials(cluster.credentials.ca, key, cert)
        )


def test_a_cluster_certificate_works_and_the_caller_is_known(cluster: LocalCluster) -> None:
    resp = _list_namespaces(cluster.endpoints()[0], channel_credentials(cluster.credentials))
    assert {"default", "kube-system"} <= {o.namespace.metadata.name for o in resp.items}  # type: ignore[attr-defined]


def test_a_master_impostor_is_not_trusted_by_the_client(
    cluster: LocalCluster, tmp_path: object
) -> None:
    """Whoever takes a master's address (e.g. the VIP) with a certificate of its own CA gets
    no request from a client: the client verifies the master against its configured CA."""
    evil = Pki(os.path.join(str(tmp_path), "evil"))
    evil.init({"m1": ["127.0.0.1"]})
    seen: list[str] = []

    async def serve() -> None:
        server = grpc.aio.server()

        async def list_(raw: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
            seen.append("request")
            return b""

        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "hakube.api.v1.ObjectService",
                    {"List": grpc.unary_unary_rpc_method_handler(list_)},
                )
            ]
        )
        files = evil.master_tls("m1")
        port = server.add_secure_port("127.0.0.1:0", server_credentials(files))
        await server.start()
        try:

            def call() -> str:
                with Client([f"127.0.0.1:{port}"], credentials=cluster.credentials, timeout=2) as c:
                    try:
                        c.namespaces.list()
                    except Unavailable as exc:
                        return str(exc)
                return "answered"

            message = await asyncio.to_thread(call)
        finally:
            await server.stop(0)
        assert "not signed by the CA in the client config" in message, message
        assert seen == []

    asyncio.run(serve())


def test_the_authenticator_refuses_a_trusted_issuer_that_is_not_the_cluster_ca() -> None:
    """A certificate whose chain the handshake accepted (e.g. a bootstrap-token issuer) but
    that the cluster CA did not sign gets no identity unless the bootstrap check vouches."""
    other = certs.CA.load(*certs.create_ca("hakube-bootstrap-token:abcdef"))
    cert, _ = other.issue_pair(ADMIN)

    class Ctx:
        def auth_context(self) -> dict[str, list[bytes]]:
            return {"x509_pem_cert": [cert]}

    from hakube.apiserver.errors import Unauthenticated

    with pytest.raises(Unauthenticated, match='for "hakube-admin" is not from the cluster CA'):
        Authenticator("hakube-ca").identify(Ctx())  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated, match="no client certificate"):
        Authenticator("hakube-ca").identify(type("C", (), {"auth_context": lambda self: {}})())  # type: ignore[arg-type]


def test_hakubectl_with_an_admin_config_works_and_without_credentials_says_why(
    cluster: LocalCluster, tmp_path: object
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKUBE_")}
    env["HOME"] = str(tmp_path)
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "hakube.cli.ctl",
            "--config",
            cluster.admin_config,
            "get",
            "ns",
            "default",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "namespace/default", ok.stderr
    bare = os.path.join(str(tmp_path), "bare")
    with open(bare, "w") as f:
        f.write(f"servers: [{cluster.endpoints()[0]}]\n")
    r = subprocess.run(
        [sys.executable, "-m", "hakube.cli.ctl", "--config", bare, "get", "ns"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: config file {bare}: no certificate-authority")
    )


@pytest.fixture
def private_cluster(tmp_path: object) -> Iterator[LocalCluster]:
    ca = Pki(os.path.join(str(tmp_path), "own-ca"))
    ca.init({})
    with LocalCluster(os.path.join(str(tmp_path), "c"), 1, ca=ca) as c:
        yield c


def test_a_cluster_with_its_own_ca_refuses_the_shared_test_admin(
    private_cluster: LocalCluster,
) -> None:
    from hakube.testing import pki as testpki

    with pytest.raises(grpc.RpcError):
        _list_namespaces(private_cluster.endpoints()[0], channel_credentials(testpki.credentials()))
    with private_cluster.client(timeout=5) as c:
        assert c.namespaces.get("default").metadata.name == "default"
