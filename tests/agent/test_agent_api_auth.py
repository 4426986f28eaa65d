"""Who may call a node agent's API: the masters only, over TLS with the node's certificate.

Exec runs commands as root in the node's containers, so every other caller is refused: one
without TLS or without a client certificate (the handshake fails), one with a certificate from
another CA (likewise), and one with a valid cluster certificate that is not a master's (the
admin's, another node's: PERMISSION_DENIED naming the caller). The agent listens on its node's
address, not every interface, unless told otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from pathlib import Path

import grpc
import pytest

from hakube.agent.agent import Agent
from hakube.api.agent.v1 import agent_pb2, agent_pb2_grpc
from hakube.pki import files
from hakube.pki.layout import Pki
from hakube.pki.tls import Credentials, channel_credentials
from hakube.testing.cluster import LocalCluster
from hakube.testing.nodepki import provision_node
from tests.agent.conftest import StartAgent

pytestmark = pytest.mark.timeout(60)


def _stats(address: str, creds: grpc.ChannelCredentials | None) -> agent_pb2.StatsResponse:
    ch = grpc.insecure_channel(address) if creds is None else grpc.secure_channel(address, creds)
    with ch:
        resp: agent_pb2.StatsResponse = agent_pb2_grpc.NodeAgentStub(ch).Stats(
            agent_pb2.StatsRequest(), timeout=10
        )
        return resp


def _call_code(address: str, creds: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        _stats(address, creds)
    return info.value.code()  # type: ignore[no-any-return]


def _creds(ca: str, cert: str, key: str) -> grpc.ChannelCredentials:
    return channel_credentials(Credentials(files.read(ca), files.read(cert), files.read(key)))


def _address(agent: Agent) -> str:
    assert agent.server.port, "the agent serves no API"
    return f"127.0.0.1:{agent.server.port}"


def test_a_master_certificate_is_served(cluster: LocalCluster, sim_agent: Agent) -> None:
    pki = cluster.pki
    resp = _stats(
        _address(sim_agent), _creds(pki.ca_cert, pki.master_cert("m1"), pki.master_key("m1"))
    )
    assert resp.node_memory_working_set_bytes >= 0


def test_a_caller_without_tls_or_without_a_client_certificate_is_refused(
    cluster: LocalCluster, sim_agent: Agent
) -> None:
    address = _address(sim_agent)
    assert _call_code(address, None) == grpc.StatusCode.UNAVAILABLE
    anonymous = grpc.ssl_channel_credentials(root_certificates=files.read(cluster.pki.ca_cert))
    assert _call_code(address, anonymous) == grpc.StatusCode.UNAVAILABLE


def test_a_master_certificate_from_another_ca_is_refused(
    cluster: LocalCluster, sim_agent: Agent, tmp_path: Path
) -> None:
    other = Pki(str(tmp_path / "other-pki"))
    other.init({"m1": ["127.0.0.1"]})
    # Trusting the agent's CA (so the failure is about our certificate, not theirs).
    creds = _creds(cluster.pki.ca_cert, other.master_cert("m1"), other.master_key("m1"))
    assert _call_code(_address(sim_agent), creds) == grpc.StatusCode.UNAVAILABLE


def test_a_cluster_certificate_that_is_not_a_master_is_refused_by_name(
    cluster: LocalCluster, sim_agent: Agent, tmp_path: Path
) -> None:
    pki = cluster.pki
    admin = _creds(pki.ca_cert, pki.user_cert("admin"), pki.user_key("admin"))
    other = provision_node(cluster, str(tmp_path / "other-node"), "other-node", ["127.0.0.1"])
    node = _creds(other.ca_cert, other.cert, other.key)
    for creds, user in ((admin, "hakube-admin"), (node, "system:node:other-node")):
        with pytest.raises(grpc.RpcError) as info:
            _stats(_address(sim_agent), creds)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f'"{user}" is not a master' in (info.value.details() or "")


def _tcp_listeners(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets process ``pid`` listens on (IPv4 socket table)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state != "0A" or inode not in inodes:
                    continue
                hexip, hexport = local.split(":")
                out.add((_proc_ip(hexip), int(hexport, 16)))
    return out


def _proc_ip(hexip: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host order); IPv4-mapped
    IPv6 addresses (how gRPC binds an IPv4 address) come back as IPv4."""
    raw = b"".join(bytes.fromhex(hexip[i : i + 8])[::-1] for i in range(0, len(hexip), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def test_by_default_the_agent_listens_on_the_node_address_only(
    start_agent: StartAgent,
) -> None:
    # A loopback address of its own, so port 10250 is not shared with anything else here.
    node_ip = f"127.{uuid.uuid4().int % 200 + 20}.{uuid.uuid4().int % 250 + 1}.9"
    agent = start_agent(runtime="simulated", listen=None, node_ip=node_ip)
    assert agent.proc is not None
    listeners = _tcp_listeners(agent.proc.pid)
    assert (node_ip, 10250) in listeners
    assert not {a for a in listeners if a[0] in ("0.0.0.0", "::")}, listeners
