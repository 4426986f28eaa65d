"""etcd with mutual TLS as the benchmark runs it ("etcd-tls"): the command line asks for TLS on
both the client and the peer side, and a real etcd accepts the benchmark's TLS client and
refuses one without a certificate."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import pytest

from bench.etcd_cluster import EtcdCluster, EtcdSystem
from bench.etcdpb import rpc_pb2, rpc_pb2_grpc

TLS_FLAGS = (
    "--cert-file",
    "--key-file",
    "--client-cert-auth",
    "--trusted-ca-file",
    "--peer-cert-file",
    "--peer-key-file",
    "--peer-client-cert-auth",
    "--peer-trusted-ca-file",
)


def _flag(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_a_tls_member_serves_https_with_client_certificates_on_both_sides(tmp_path: Path) -> None:
    cluster = EtcdCluster(str(tmp_path), tls=True, binary="etcd")
    cmd = cluster.command(next(iter(cluster._members.values())))

    assert all(flag in cmd for flag in TLS_FLAGS)
    for flag in (
        "--listen-client-urls",
        "--advertise-client-urls",
        "--listen-peer-urls",
        "--initial-advertise-peer-urls",
    ):
        assert _flag(cmd, flag).startswith("https://127.0.0.1:")
    assert all(
        url.split("=", 1)[1].startswith("https://")
        for url in _flag(cmd, "--initial-cluster").split(",")
    )
    assert _flag(cmd, "--trusted-ca-file") == _flag(cmd, "--peer-trusted-ca-file")
    assert cluster.client_credentials is not None
    assert cluster.target("e1").credentials == cluster.client_credentials
    assert cluster.target("e1").name == "etcd"  # the System names it; see EtcdSystem


def test_a_plain_member_has_no_tls_flags(tmp_path: Path) -> None:
    cluster = EtcdCluster(str(tmp_path), binary="etcd")
    cmd = cluster.command(next(iter(cluster._members.values())))

    assert not any(flag in cmd for flag in TLS_FLAGS)
    assert _flag(cmd, "--listen-client-urls").startswith("http://")
    assert cluster.client_credentials is None


@pytest.mark.skipif(
    shutil.which("etcd") is None, reason="etcd not installed (scripts/install/etcd.sh installs it)"
)
def test_etcd_tls_takes_writes_from_a_client_certificate_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        system = EtcdSystem(data_root=str(tmp_path), tls=True)
        assert system.name == "etcd-tls"
        async with system.cluster(fsync=system.fsync_modes[-1]) as c:
            leader = await c.leader()
            target = c.target(leader)
            assert target.name == "etcd-tls"
            await target.setup()
            try:
                await target.put("/bench/tls", b"v")
            finally:
                await target.close()
            creds = c.client_credentials
            assert creds is not None
            # Trusting the CA is not enough: etcd wants a certificate from its CA too.
            ca_only = grpc.ssl_channel_credentials(root_certificates=creds.ca)
            async with grpc.aio.secure_channel(target.endpoint, ca_only) as channel:
                with pytest.raises(grpc.aio.AioRpcError):
                    await rpc_pb2_grpc.KVStub(channel).Put(
                        rpc_pb2.PutRequest(key=b"/bench/no-cert", value=b"v"), timeout=5
                    )

    asyncio.run(scenario())
