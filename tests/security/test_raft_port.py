"""The Raft port of real ``hakube master`` processes: the remote-code-execution hole of
pysyncobj's transport (it unpickled the first frame of any connection) is closed, its admin
commands and read-only peers are refused, refusals are exported as
hakube_raft_refused_connections_total, and the port listens on the --raft-listen host only."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hakube.client.ops import OpsClient
from hakube.local.cluster import MasterProc
from hakube.pki import certs, names
from hakube.store.transport import REFUSAL_REASONS
from hakube.testing import rawraft
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    return masters3


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Api:
    return Api(cluster.endpoints())


def voters(cluster: LocalCluster) -> list[tuple[str, str]]:
    with OpsClient(cluster.endpoints(), timeout=5) as ops:
        resp = ops.list_members()
    return sorted((m.name, m.raft_address) for m in resp.members if m.voter)


def healthy(cluster: LocalCluster, api: Api) -> None:
    """Every master ready, one leader, and a write goes through."""
    cluster.wait_ready(timeout=30)
    cluster.leader()
    api.create_configmap(f"probe-{uuid.uuid4().hex[:8]}")


def expect_refusal(m: MasterProc, reason: str, before: float) -> None:
    wait_for(
        lambda: rawraft.refused(m.metrics).get(reason, 0) >= before + 1,
        10,
        f"{m.name} to count a {reason} refusal",
    )


def attackers(cluster: LocalCluster) -> dict[str, tuple[rawraft.Identity | None, str]]:
    pki = cluster.pki
    master = certs.Identity(names.master_user("m2"), (names.MASTERS_GROUP,))
    return {
        "plaintext": (None, "handshake"),
        "another CA": (rawraft.foreign_identity(pki, master), "handshake"),
        "a node's certificate": (
            rawraft.cluster_identity(
                pki, certs.Identity(names.node_user("n1"), (names.NODES_GROUP,))
            ),
            "not_member",
        ),
        "the admin's certificate": (
            rawraft.cluster_identity(pki, certs.Identity(names.ADMIN_USER, (names.ADMINS_GROUP,))),
            "not_member",
        ),
        "a master that is not a member": (
            rawraft.cluster_identity(
                pki, certs.Identity(names.master_user("m9"), (names.MASTERS_GROUP,))
            ),
            "not_member",
        ),
    }


@pytest.mark.parametrize(
    "how",
    [
        "plaintext",
        "another CA",
        "a node's certificate",
        "the admin's certificate",
        "a master that is not a member",
    ],
)
def test_a_pickle_that_creates_a_file_never_runs_on_a_master(
    cluster: LocalCluster, api: Api, tmp_path: Path, how: str
) -> None:
    identity, reason = attackers(cluster)[how]
    for m in cluster.masters:
        target = tmp_path / f"created-by-{m.name}"
        before = rawraft.refused(m.metrics).get(reason, 0)
        evil = rawraft.frame(rawraft.CreatesFile(str(target)))
        out = rawraft.talk(m.raft, evil + evil, identity)
        assert out.closed and not out.frames, (m.name, how)
        expect_refusal(m, reason, before)
        assert not target.exists(), (m.name, how)
    healthy(cluster, api)


@pytest.mark.parametrize(
    "message,reason",
    [
        (["add", "127.0.0.1:1"], "utility"),
        (["remove", "m3"], "utility"),
        (["status"], "utility"),
        (["set_version", 9], "utility"),
        (["transfer", "m3"], "utility"),
        ("readonly", "readonly"),
    ],
)
def test_utility_commands_and_readonly_peers_are_refused_even_with_a_member_certificate(
    cluster: LocalCluster, api: Api, message: object, reason: str
) -> None:
    m1, m2, m3 = cluster.masters
    if isinstance(message, list) and message[1:] == ["m3"]:
        message = [message[0], m3.raft]
    members_before = voters(cluster)
    leader_before = cluster.leader().name
    for target in (m1, m3):
        before = rawraft.refused(target.metrics).get(reason, 0)
        out = rawraft.talk(
            target.raft, rawraft.frame(message), rawraft.member_identity(cluster.pki, "m2")
        )
        assert out.closed and not out.frames  # pysyncobj would have answered
        expect_refusal(target, reason, before)
    healthy(cluster, api)
    assert voters(cluster) == members_before
    assert cluster.leader().name == leader_before


def test_a_member_certificate_claiming_another_members_address_is_refused_as_spoofed(
    cluster: LocalCluster, api: Api
) -> None:
    m1, m2, m3 = cluster.masters
    before = rawraft.refused(m1.metrics).get("spoofed", 0)
    out = rawraft.talk(m1.raft, rawraft.frame(m3.raft), rawraft.member_identity(cluster.pki, "m2"))
    assert out.closed and not out.frames
    expect_refusal(m1, "spoofed", before)
    healthy(cluster, api)


def test_every_refusal_reason_is_exported_from_zero(cluster: LocalCluster) -> None:
    got = rawraft.refused(cluster.masters[0].metrics)
    assert set(got) == set(REFUSAL_REASONS)


def test_raft_listens_on_the_raft_listen_host_only(cluster: LocalCluster) -> None:
    for m in cluster.masters:
        port = int(m.raft.rpartition(":")[2])
        assert rawraft.listening_addresses(port) == ["127.0.0.1"], m.name
