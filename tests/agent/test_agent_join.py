"""Joining with a bootstrap token, what a token may do, and a node's certificate renewal."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest

from hakube.agent.agent import Agent
from hakube.agent.config import AgentSettings
from hakube.api.v1 import api_pb2, api_pb2_grpc, join_pb2, join_pb2_grpc
from hakube.cli.token_cmd import create_token
from hakube.client import Client
from hakube.lifecycle import Running
from hakube.pki import bootstrap, certs, files
from hakube.pki.layout import NodePki, node_identity
from hakube.pki.tls import Credentials, channel_credentials
from hakube.testing.cluster import LocalCluster
from hakube.testing.join import token_for
from hakube.testing.wait import wait_for
from tests.agent.conftest import ROOT, StartAgent, node_ready

pytestmark = pytest.mark.timeout(120)


def run_agent(
    cluster: LocalCluster, root: Path, token: str, ca_hash: str
) -> subprocess.CompletedProcess[str]:
    """``hakube agent`` that is expected to give up at the join."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hakube",
            "agent",
            "--node-name",
            f"j-{uuid.uuid4().hex[:6]}",
            "--server",
            cluster.endpoints()[0],
            "--root-dir",
            str(root),
            "--runtime",
            "simulated",
            "--listen",
            "127.0.0.1:0",
            "--node-ip",
            "127.0.0.1",
            "--token",
            token,
            "--ca-cert-hash",
            ca_hash,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def assert_refused(p: subprocess.CompletedProcess[str], root: Path, *words: str) -> None:
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hakube agent: "), p.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not (root / "pki").exists()


def test_a_token_joined_node_has_a_private_certificate_from_the_cluster_ca(
    cluster: LocalCluster, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent(runtime="simulated")
    pki = NodePki(str(tmp_path / agent.node / "pki"))
    assert stat.S_IMODE(os.stat(pki.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(pki.key).st_mode) == 0o600
    cert = certs.load_cert(files.read(pki.cert))
    assert certs.identity_of(cert) == node_identity(agent.node)
    ca = certs.load_cert(files.read(cluster.pki.ca_cert))
    cert.verify_directly_issued_by(ca)
    assert files.read(pki.ca_cert) == files.read(cluster.pki.ca_cert)
    assert {agent.node, "127.0.0.1"} <= set(certs.hosts_of(cert))


def test_a_wrong_secret_is_refused_in_one_line_and_nothing_is_written(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    token, ca_hash = token_for(cluster.endpoints())
    wrong = token[:7] + ("a" if token[7] != "a" else "b") + token[8:]
    assert_refused(
        run_agent(cluster, tmp_path / "n", wrong, ca_hash), tmp_path / "n", "bootstrap token"
    )


def test_a_wrong_ca_hash_is_refused_in_one_line_and_nothing_is_written(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    token, _ = token_for(cluster.endpoints())
    assert_refused(
        run_agent(cluster, tmp_path / "n", token, "sha256:" + "0" * 64),
        tmp_path / "n",
        "--ca-cert-hash",
        "does not match",
    )


def test_an_expired_token_is_refused_in_one_line_and_nothing_is_written(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    token, expiration = create_token(client, datetime.timedelta(seconds=2), "expires soon")
    assert expiration is not None
    _, ca_hash = token_for(cluster.endpoints())
    deadline = time.monotonic() + 10
    while datetime.datetime.now(datetime.UTC) <= expiration:
        assert time.monotonic() < deadline, "the clock did not pass the token's expiration"
        time.sleep(0.1)
    assert_refused(
        run_agent(cluster, tmp_path / "n", str(token), ca_hash), tmp_path / "n", "bootstrap token"
    )


def test_no_certificate_and_no_token_tells_how_to_get_one(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "hakube",
            "agent",
            "--node-name",
            "lonely",
            "--server",
            cluster.endpoints()[0],
            "--root-dir",
            str(tmp_path / "n"),
            "--runtime",
            "simulated",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert_refused(p, tmp_path / "n", "hakube token create", "--token")


def _bootstrap_channel(cluster: LocalCluster, token: str) -> grpc.Channel:
    cert, key = bootstrap.client_pair(bootstrap.parse(token))
    creds = Credentials(ca=files.read(cluster.pki.ca_cert), cert=cert, key=key)
    return grpc.secure_channel(cluster.endpoints()[0], channel_credentials(creds))


def test_a_bootstrap_token_may_call_only_the_join_service(cluster: LocalCluster) -> None:
    token, _ = token_for(cluster.endpoints())
    with _bootstrap_channel(cluster, token) as ch:
        info = join_pb2_grpc.JoinServiceStub(ch).ClusterInfo(
            join_pb2.ClusterInfoRequest(), timeout=10
        )
        assert info.ca_pem == files.read(cluster.pki.ca_cert)
        with pytest.raises(grpc.RpcError) as err:
            api_pb2_grpc.ObjectServiceStub(ch).List(api_pb2.ListRequest(kind="Pod"), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as err:
            csr, _ = certs.make_request(node_identity("x"))
            join_pb2_grpc.JoinServiceStub(ch).Renew(join_pb2.RenewRequest(csr_pem=csr), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_node_renews_only_its_own_certificate(
    cluster: LocalCluster, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent(runtime="simulated")
    creds = NodePki(str(tmp_path / agent.node / "pki")).tls_files().load()
    with grpc.secure_channel(cluster.endpoints()[0], channel_credentials(creds)) as ch:
        stub = join_pb2_grpc.JoinServiceStub(ch)
        own, _ = certs.make_request(node_identity(agent.node))
        renewed = certs.load_cert(
            stub.Renew(join_pb2.RenewRequest(csr_pem=own), timeout=10).certificate_pem
        )
        assert certs.identity_of(renewed) == node_identity(agent.node)
        other, _ = certs.make_request(node_identity("someone-else"))
        with pytest.raises(grpc.RpcError) as err:
            stub.Renew(join_pb2.RenewRequest(csr_pem=other), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            stub.Join(join_pb2.JoinRequest(node_name="someone-else", csr_pem=other), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_agent_renews_a_certificate_near_its_expiry_and_keeps_working(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    name = f"renew-{uuid.uuid4().hex[:6]}"
    pki = NodePki(str(tmp_path / name / "pki"))
    ca = cluster.pki.load_ca()
    files.ensure_private_dir(pki.root)
    short = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=23)  # 1 h left
    key = certs.new_key()
    cert = ca.issue(
        node_identity(name), key.public_key(), server=True, hosts=(name,), days=1, now=short
    )
    files.write_atomic(pki.ca_cert, ca.pem)
    files.write_atomic(pki.key, certs.key_pem(key))
    files.write_atomic(pki.cert, certs.cert_pem(cert))
    settings = AgentSettings(
        node_name=name,
        servers=tuple(cluster.endpoints()),
        root_dir=str(tmp_path / name),
        runtime="simulated",
        listen="127.0.0.1:0",
        node_ip="127.0.0.1",
        lease_interval=0.5,
        lease_duration=5,
        status_interval=1,
        cert_renew_before=2 * 3600.0,
        cert_check_interval=0.5,
    )
    running = Running.start(Agent(settings))
    agent = running.service
    try:
        assert running.wait_ready(30), f"agent did not become ready: {running.error!r}"

        def renewed() -> bool:
            got = certs.load_cert(files.read(pki.cert))
            return got.serial_number != cert.serial_number

        wait_for(renewed, 20, "the node certificate renewed")
        new = certs.load_cert(files.read(pki.cert))
        assert certs.not_after(new) - certs.not_after(cert) > datetime.timedelta(days=300)
        assert certs.identity_of(new) == node_identity(name)
        assert agent.client.transport.credentials.cert == files.read(pki.cert)
        wait_for(lambda: node_ready(client, name), 20, f"node {name} Ready")
    finally:
        running.stop(15)
