"""The Raft port is mutual TLS between current members only: nothing an outsider sends reaches a
decoder, nothing anyone sends can call code, pysyncobj's admin commands and read-only peers are
refused, a member cannot pose as another, and the port is bound to the Raft host only."""

from __future__ import annotations

import io
import os
import pickle
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pysyncobj.node import TCPNode

from hakube.pki import certs, names
from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.fsm import StoreFSM
from hakube.store.raft import RaftNode, RaftSettings
from hakube.store.transport import (
    MAX_FRAME,
    CommandUnpickler,
    WireError,
    decode_payload,
    encode_frame,
)
from hakube.testing import rawraft
from hakube.testing.raft import InProcessCluster, member_tls
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def started(raft_cluster: Callable[..., InProcessCluster], **settings: object) -> InProcessCluster:
    c = raft_cluster(3, **settings)
    for name in c.addrs:
        c.start(name)
    c.leader()
    return c


def counted(node: RaftNode, reason: str, at_least: int) -> None:
    wait_for(lambda: node.refused[reason] >= at_least, 10, f"a {reason} refusal to be counted")


def writes_work(c: InProcessCluster, key: str) -> None:
    leader = c.leader(20)
    op = ops.wire(ops.Create("", "ConfigMap", "default", key, b"x", {}, {}, 0))
    assert leader.proposer.submit(op).result(20)[0] == store.OK


def other_identities(c: InProcessCluster) -> dict[str, rawraft.Identity]:
    """Certificates of the cluster's CA that are not a current member's."""
    return {
        "node": rawraft.cluster_identity(
            c.pki, certs.Identity(names.node_user("n1"), (names.NODES_GROUP,))
        ),
        "admin": rawraft.cluster_identity(
            c.pki, certs.Identity(names.ADMIN_USER, (names.ADMINS_GROUP,))
        ),
        "unknown-master": rawraft.cluster_identity(
            c.pki, certs.Identity(names.master_user("intruder"), (names.MASTERS_GROUP,))
        ),
    }


def test_a_pickle_that_would_create_a_file_never_runs_when_sent_in_plaintext(
    raft_cluster: Callable[..., InProcessCluster], tmp_path: Path
) -> None:
    c = started(raft_cluster)
    target = tmp_path / "pwned"
    node = c.nodes["r0"]
    before = node.refused["handshake"]
    out = rawraft.talk(c.addrs["r0"], rawraft.frame(rawraft.CreatesFile(str(target))))
    assert out.closed and not out.frames
    counted(node, "handshake", before + 1)
    assert not target.exists()
    writes_work(c, "after-plaintext")


def test_a_client_certificate_from_another_ca_fails_the_handshake(
    raft_cluster: Callable[..., InProcessCluster], tmp_path: Path
) -> None:
    c = started(raft_cluster)
    target = tmp_path / "pwned"
    node = c.nodes["r1"]
    before = node.refused["handshake"]
    # Named like a member, signed by another CA.
    fake = rawraft.foreign_identity(
        c.pki, certs.Identity(names.master_user("r0"), (names.MASTERS_GROUP,))
    )
    data = rawraft.frame(c.addrs["r0"]) + rawraft.frame(rawraft.CreatesFile(str(target)))
    out = rawraft.talk(c.addrs["r1"], data, fake)
    assert out.closed and not out.frames  # the master counts it as a failed handshake:
    counted(node, "handshake", before + 1)
    assert not target.exists()
    writes_work(c, "after-foreign-ca")


def test_a_cluster_certificate_that_names_no_current_member_is_refused_before_any_frame_is_read(
    raft_cluster: Callable[..., InProcessCluster], tmp_path: Path
) -> None:
    c = started(raft_cluster)
    node = c.nodes["r2"]
    for i, (what, ident) in enumerate(other_identities(c).items()):
        target = tmp_path / f"pwned-{what}"
        out = rawraft.talk(c.addrs["r2"], rawraft.frame(rawraft.CreatesFile(str(target))), ident)
        assert out.closed and not out.frames, what
        counted(node, "not_member", i + 1)
        assert not target.exists(), what
    assert node.refused["bad_frame"] == 0  # refused on the certificate, not on the frame
    writes_work(c, "after-non-members")


def test_a_member_sending_a_frame_that_would_call_a_global_is_refused(
    raft_cluster: Callable[..., InProcessCluster], tmp_path: Path
) -> None:
    c = started(raft_cluster)
    lo, hi = (
        sorted(c.addrs, key=c.addrs.__getitem__)[0],
        sorted(c.addrs, key=c.addrs.__getitem__)[-1],
    )
    node = c.nodes[lo]
    member = rawraft.member_identity(c.pki, hi)
    c.stop(hi)  # else the real member's reconnection could replace ours before the bad frame
    for i, first in enumerate([True, False]):
        target = tmp_path / f"pwned-{i}"
        evil = rawraft.frame(rawraft.CreatesFile(str(target)))
        data = (
            evil
            if first
            else rawraft.frame(c.addrs[hi])
            + rawraft.frame({"type": "append_entries", "x": rawraft.CreatesFile(str(target))})
        )
        out = rawraft.talk(c.addrs[lo], data, member)
        assert out.closed, first
        counted(node, "bad_frame", i + 1)
        assert not target.exists()
    writes_work(c, "after-bad-frames")


@pytest.mark.parametrize(
    "message,reason",
    [
        (["add", "127.0.0.1:1"], "utility"),
        (["remove", None], "utility"),
        (["status"], "utility"),
        (["set_version", 9], "utility"),
        (["transfer", None], "utility"),
        ("readonly", "readonly"),
    ],
)
def test_utility_commands_and_readonly_peers_are_refused_even_from_a_member(
    raft_cluster: Callable[..., InProcessCluster], message: object, reason: str
) -> None:
    c = started(raft_cluster)
    leader = c.leader()
    name = leader.settings.name
    other = next(n for n in c.addrs if n != name)
    if isinstance(message, list) and message[1:] == [None]:
        message = [message[0], c.addrs[other]]
    peers_before = {n: node.raft_peers() for n, node in c.nodes.items()}
    out = rawraft.talk(c.addrs[name], rawraft.frame(message), rawraft.member_identity(c.pki, other))
    assert out.closed and not out.frames  # no answer (pysyncobj would answer status/add/...)
    counted(leader, reason, 1)
    writes_work(c, f"after-{reason}")
    assert {n: node.raft_peers() for n, node in c.nodes.items()} == peers_before


def test_a_member_introducing_itself_with_another_members_address_is_refused_as_spoofed(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster)
    by_addr = sorted(c.addrs, key=c.addrs.__getitem__)
    lo, mid, hi = by_addr
    node = c.nodes[lo]
    # hi's certificate, mid's address: the connection must not become mid's.
    out = rawraft.talk(c.addrs[lo], rawraft.frame(c.addrs[mid]), rawraft.member_identity(c.pki, hi))
    assert out.closed and not out.frames
    counted(node, "spoofed", 1)
    # A member with the greater address dials; mid's certificate dialling in the wrong
    # direction (to hi) is refused too.
    out = rawraft.talk(c.addrs[hi], rawraft.frame(c.addrs[lo]), rawraft.member_identity(c.pki, lo))
    assert out.closed
    counted(c.nodes[hi], "spoofed", 1)
    writes_work(c, "after-spoofing")


def test_a_member_certificate_with_its_own_address_is_accepted_and_gets_raft_messages(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster)
    lo, _, hi = sorted(c.addrs, key=c.addrs.__getitem__)
    c.stop(hi)  # the test client stands in for it (the real one would replace the connection)
    leader = c.leader()
    if leader is not c.nodes[lo]:
        leader.transfer_leadership(c.addrs[lo]).result(10)
        wait_for(lambda: c.nodes[lo].is_leader(), 15, f"{lo} to lead")
    out = rawraft.talk(
        c.addrs[lo], rawraft.frame(c.addrs[hi]), rawraft.member_identity(c.pki, hi), hold=1.0
    )
    assert not out.closed
    assert any(isinstance(f, dict) and f.get("type") == "append_entries" for f in out.frames)
    assert sum(c.nodes[lo].refused.values()) == 0
    c.start(hi)
    writes_work(c, "after-a-stand-in")


def test_a_dialled_peer_that_presents_another_members_certificate_is_refused(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = raft_cluster(3)
    target, *others = sorted(c.addrs, key=c.addrs.__getitem__)  # the others dial the target
    for name in others:
        c.start(name)
    creds = rawraft.member_identity(c.pki, others[0])  # not the target's certificate
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=creds.trust.decode())
    d = c.base + "/fake"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/c", "wb") as f:
        f.write(creds.cert)
    with open(f"{d}/k", "wb") as f:
        f.write(creds.key)
    ctx.load_cert_chain(f"{d}/c", f"{d}/k")
    host, _, port = c.addrs[target].rpartition(":")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(8)
    srv.settimeout(0.5)
    stop = threading.Event()
    got_frames: list[bytes] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                s, _ = srv.accept()
            except TimeoutError:
                continue
            s.settimeout(5)
            try:
                with ctx.wrap_socket(s, server_side=True) as t:
                    data = t.recv(65536)
                    if data:
                        got_frames.append(data)
            except (ssl.SSLError, OSError):
                pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        wait_for(
            lambda: all(c.nodes[n].refused["spoofed"] >= 1 for n in others),
            15,
            "both dialling members to refuse the impostor",
        )
    finally:
        stop.set()
        th.join(5)
        srv.close()
    assert not got_frames  # they never introduced themselves to it


def test_a_frame_longer_than_the_cap_is_refused_before_it_is_buffered(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster)
    lo, _, hi = sorted(c.addrs, key=c.addrs.__getitem__)
    c.stop(hi)  # else the real member's reconnection could replace ours before the bad frame
    header = struct.pack("i", MAX_FRAME + 1)
    out = rawraft.talk(
        c.addrs[lo],
        rawraft.frame(c.addrs[hi]) + header + b"\0" * 1024,
        rawraft.member_identity(c.pki, hi),
    )
    assert out.closed
    counted(c.nodes[lo], "bad_frame", 1)
    writes_work(c, "after-a-huge-frame")


def test_a_connection_that_never_completes_the_handshake_is_dropped_after_the_timeout(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster, extra={"connectionTimeout": 1.5})
    start = time.monotonic()
    out = rawraft.talk(c.addrs["r0"], b"", wait=10)
    assert out.closed
    assert 1.0 < time.monotonic() - start < 6
    counted(c.nodes["r0"], "handshake", 1)


def test_connections_beyond_the_setup_cap_are_refused_and_the_cluster_keeps_working(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster)
    host, _, port = c.addrs["r1"].rpartition(":")
    socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(80)]
    try:
        counted(c.nodes["r1"], "too_many", 10)
        writes_work(c, "while-flooded")
    finally:
        for s in socks:
            s.close()
    writes_work(c, "after-the-flood")


def test_raft_listens_only_on_the_host_of_its_address(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster)
    for addr in c.addrs.values():
        assert rawraft.listening_addresses(int(addr.rpartition(":")[2])) == ["127.0.0.1"]


def test_raft_on_an_ipv6_literal_listens_on_that_address_only(tmp_path: Path) -> None:
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    node = RaftNode(
        RaftSettings(
            name="solo",
            raft_address=f"::1:{port}",
            peers={},
            data_dir=str(tmp_path / "d"),
            tls=member_tls(str(tmp_path / "pki"), "solo"),
        ),
        StoreFSM(),
    )
    try:
        wait_for(lambda: rawraft.listening_addresses(port) == ["::1"], 10, "the listener")
    finally:
        node.stop()


# -- the decoders --------------------------------------------------------------------------------


def test_the_wire_decoder_refuses_any_global_and_reads_raft_messages() -> None:
    msg = {
        "type": "append_entries",
        "term": 3,
        "prevLogIdx": 7,
        "prevLogTerm": 2,
        "entries": [(b"\x01\x80\xff", 8, 3)],
        "commit_index": 7,
        "ok": True,
        "x": None,
        "f": 0.5,
        "t": ("a", ["b"]),
        "s": {1, 2},
    }
    assert decode_payload(encode_frame(msg)[4:]) == msg
    for evil in (
        rawraft.CreatesFile("/nonexistent/x"),
        TCPNode("127.0.0.1:1"),
        print,
        {"a": [os.system]},
    ):
        data = zlib.compress(pickle.dumps(evil, 2))
        with pytest.raises(WireError, match="refused"):
            decode_payload(data)
    with pytest.raises(WireError):
        decode_payload(b"not zlib")
    bomb = zlib.compress(b"\0" * (1024 * 1024), 9)
    with pytest.raises(WireError, match="cap"):
        decode_payload(bomb, max_decoded=1024)


def test_log_commands_decode_membership_nodes_and_store_batches_but_no_other_global() -> None:
    def load(obj: object, protocol: int) -> object:
        return CommandUnpickler(io.BytesIO(pickle.dumps(obj, protocol))).load()

    for protocol in (2, 5):
        entry = ["add", "127.0.0.1:7001", TCPNode("127.0.0.1:7001")]
        got = load(entry, protocol)
        assert isinstance(got, list) and got[2] == TCPNode("127.0.0.1:7001")
        batch = (
            1,
            ([ops.wire(ops.Create("", "Pod", "default", "p", b"\x00\xff", {}, {"a": 1}, 0))],),
            {},
        )
        assert load(batch, protocol) == batch
        with pytest.raises(pickle.UnpicklingError):
            load(rawraft.CreatesFile("/nonexistent/x"), protocol)
        with pytest.raises(pickle.UnpicklingError):
            load(os.system, protocol)


def test_members_connect_to_each_other_without_a_single_refusal(
    raft_cluster: Callable[..., InProcessCluster],
) -> None:
    c = started(raft_cluster)
    for i in range(20):
        writes_work(c, f"k{i}")
    leader = c.leader()
    c.stop(leader.settings.name)  # reconnections after a leader change are clean too
    c.start(leader.settings.name)
    writes_work(c, "after-restart")
    assert all(sum(n.refused.values()) == 0 for n in c.nodes.values()), {
        name: n.refused for name, n in c.nodes.items()
    }
