"""Owner-only files (data dir 0700, journal/dumps/members/snapshots/audit log 0600) and the audit
log: one JSON line per request with user, verb and final code, never a Secret value, rotated by
size."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import uuid
from typing import Any

import grpc
import pytest

from hakube.api.v1 import api_pb2, core_pb2
from hakube.apiserver.audit import AuditError, AuditLog, AuditSettings
from hakube.apiserver.authz.authorizer import Authorizer
from hakube.apiserver.errors import Forbidden as ApiForbidden
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.server import ApiServer
from hakube.client import Client, Forbidden, NotFound
from hakube.local import procs
from hakube.pki.certs import Identity
from hakube.store.fsm import StoreFSM
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(180)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def audit_lines(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_a_group_readable_data_dir_is_refused_with_the_fix(tmp_path: Any) -> None:
    c = LocalCluster(str(tmp_path), 1)
    m = c.masters[0]
    os.makedirs(m.data_dir, mode=0o755)
    os.chmod(m.data_dir, 0o755)  # as older versions created it
    c.start(m)
    assert m.proc is not None and m.proc.wait(30) == 1
    assert c.tail(m, 1).strip() == (
        f"hakube master: data dir {m.data_dir} is accessible by "
        f"group or others (mode 755); run `chmod 700 {m.data_dir}`"
    )
    assert not os.path.exists(os.path.join(m.data_dir, "raft.journal"))


def test_masters_create_owner_only_files_and_log_every_request(tmp_path: Any) -> None:
    audit = str(tmp_path / "audit" / "m1.log")
    canary = f"canary-{uuid.uuid4().hex}"
    c = LocalCluster(str(tmp_path / "c"), 3, extra_args=["--compaction-min-entries", "30"])
    scheduled = str(tmp_path / "scheduled")
    c.masters[0].extra_args += [
        "--audit-log-path",
        audit,
        "--snapshot-dir",
        scheduled,
        "--snapshot-interval",
        "0.5",
    ]
    with c, c.client() as client:
        one = Client([c.masters[0].api], credentials=c.credentials)  # every call reaches m1
        s = core_pb2.Secret(metadata={"name": "db"})
        s.string_data["password"] = canary
        created_rv = int(one.create(s).metadata.resource_version)
        assert one.get(core_pb2.Secret, "db").data["password"] == canary.encode()
        with pytest.raises(Forbidden):
            one.delete(core_pb2.Namespace, "default")
        with pytest.raises(NotFound):
            one.get(core_pb2.ConfigMap, "absent")
        with one.watch(core_pb2.Secret, resource_version=created_rv - 1) as w:
            first = next(iter(w)).object
            assert first is not None and first.metadata.name == "db"
        for i in range(40):
            client.create(core_pb2.ConfigMap(metadata={"name": f"fill-{i}"}))
        wait_for(
            lambda: all(os.path.exists(os.path.join(m.data_dir, "raft.dump")) for m in c.masters),
            60,
            "every master compacted",
        )
        snap = str(tmp_path / "backup.snap")
        out = subprocess.run(
            procs.hakube_argv("snapshot", "save", snap, "-s", c.endpoints()[0]),
            capture_output=True,
            text=True,
            timeout=60,
            env=c.env,
        )
        assert out.returncode == 0, out.stderr
        assert mode(snap) == 0o600
        restored = str(tmp_path / "restored")
        out = subprocess.run(
            procs.hakube_argv(
                "snapshot",
                "restore",
                snap,
                "--data-dir",
                restored,
                "--name",
                "r1",
                "--raft-listen",
                "127.0.0.1:1",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            env=c.env,
        )
        assert out.returncode == 0, out.stderr
        wait_for(
            lambda: any(n.endswith(".snap") for n in os.listdir(scheduled)),
            20,
            "a scheduled snapshot",
        )

        def logged() -> list[dict[str, Any]]:
            return [
                r
                for r in audit_lines(audit)
                if r["resource"] in ("secrets", "namespaces", "configmaps")
            ]

        wait_for(
            lambda: len([r for r in logged() if r["name"] == "absent"]) == 1,
            10,
            "the audit records",
        )
        one.close()
    for m in c.masters:
        assert mode(m.data_dir) == 0o700
        for name in os.listdir(m.data_dir):
            path = os.path.join(m.data_dir, name)
            if os.path.isfile(path):
                assert mode(path) == 0o600, (path, oct(mode(path)))
    assert mode(audit) == 0o600
    assert mode(scheduled) == 0o700
    assert all(mode(os.path.join(scheduled, n)) == 0o600 for n in os.listdir(scheduled))
    assert mode(restored) == 0o700
    assert sorted(os.listdir(restored)) == ["members.json", "raft.dump"]
    assert all(mode(os.path.join(restored, n)) == 0o600 for n in os.listdir(restored))
    records = logged()
    by = {(r["verb"], r["resource"], r["name"]): r for r in records}
    created = by[("create", "secrets", "db")]
    assert created["user"] == "hakube-admin" and "system:masters" in created["groups"]
    assert created["code"] == "OK" and created["namespace"] == "default"
    assert by[("get", "secrets", "db")]["code"] == "OK"
    assert by[("delete", "namespaces", "default")]["code"] == "PERMISSION_DENIED"
    assert by[("get", "configmaps", "absent")]["code"] == "NOT_FOUND"
    assert by[("watch", "secrets", "")]["code"] in ("OK", "CANCELLED")
    assert all(r["latencyMs"] >= 0 and r["auditID"] for r in records)
    with open(audit, "rb") as f:
        body = f.read()
    assert canary.encode() not in body and b"password" not in body


def test_the_audit_log_rotates_by_size_and_keeps_the_backups_asked_for(tmp_path: Any) -> None:
    path = str(tmp_path / "audit.log")
    log = AuditLog(AuditSettings(path=path, max_size_mb=1, max_backups=2))
    req = core_pb2.Secret  # no request fields: resource/name empty
    for _ in range(30000):  # ~ 7 MiB of records
        log.record("Get", req(), "OK", 0.001)
    log.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    for n in names:
        assert os.path.getsize(tmp_path / n) <= 1024 * 1024
        assert mode(str(tmp_path / n)) == 0o600
    assert log.written == 30000 and log.dropped == 0


def test_an_audit_policy_drops_what_it_says_and_refuses_body_levels(tmp_path: Any) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
        "- level: None\n  users: [alice]\n- level: Metadata\n"
    )
    log = AuditLog(AuditSettings(path=str(tmp_path / "a.log"), policy_file=str(policy)))
    assert log.level("alice", (), "get", "secrets", "") == "None"
    assert log.level("bob", (), "get", "secrets", "") == "Metadata"
    log.close()
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n"
    )
    with pytest.raises(AuditError, match=r"rules\[0\]\.level: 'RequestResponse' is not "):
        AuditLog(AuditSettings(path=str(tmp_path / "b.log"), policy_file=str(policy)))


def test_the_audit_record_carries_the_final_code_whatever_ended_the_call(tmp_path: Any) -> None:
    """In-process: a handler that fails unexpectedly is UNKNOWN, a refused one its ApiError's
    code, as the client sees them."""

    class Who:
        def identify(self, ctx: Any) -> Identity:
            return Identity("alice", ("devs",))

    path = str(tmp_path / "audit.log")
    log = AuditLog(AuditSettings(path=path))
    # Only ``unary`` is used: no object API, watch hub or cluster status behind it.
    server = ApiServer(
        None,
        None,
        MasterMetrics(),
        None,  # type: ignore[arg-type]
        authenticator=Who(),  # type: ignore[arg-type]
        authorizer=Authorizer(StoreFSM(), "AlwaysAllow"),
        audit=log,
    )

    async def broken(req: Any) -> Any:
        raise RuntimeError("a bug")

    async def refused(req: Any) -> Any:
        raise ApiForbidden("no")

    async def main() -> list[grpc.StatusCode]:
        srv = grpc.aio.server()
        srv.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "t.S",
                    {
                        "Get": server.unary("Get", broken, api_pb2.GetRequest),
                        "Delete": server.unary("Delete", refused, api_pb2.DeleteRequest),
                    },
                )
            ]
        )
        port = srv.add_insecure_port("127.0.0.1:0")
        await srv.start()
        codes = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            for method, req in (
                ("Get", api_pb2.GetRequest(kind="Secret", name="a")),
                ("Delete", api_pb2.DeleteRequest(kind="Secret", name="b")),
            ):
                try:
                    await ch.unary_unary(f"/t.S/{method}")(req.SerializeToString())
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
        await srv.stop(0)
        return codes

    codes = asyncio.run(main())
    log.close()
    assert codes == [grpc.StatusCode.UNKNOWN, grpc.StatusCode.PERMISSION_DENIED]
    got = [(r["verb"], r["name"], r["user"], r["code"]) for r in audit_lines(path)]
    assert got == [("get", "a", "alice", "UNKNOWN"), ("delete", "b", "alice", "PERMISSION_DENIED")]
