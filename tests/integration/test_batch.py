"""ObjectService.Batch through the Python client's BatchWriter, on three real masters: results
matched to their writes, errors per write, authorization per write, and a master killed while
batches are in flight (the client fails over and names the writes whose outcome is unknown)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.client.batch import BatchWriter
from hakube.testing.cluster import LocalCluster
from hakube.testing.overload import grant_configmap_writes, user_credentials
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(180)


def _cm(name: str, value: str = "v") -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, "default"
    cm.data["v"] = value
    return cm


def _names(client: Client, prefix: str) -> set[str]:
    items = client.list("configmaps", namespace="default").items
    return {o.metadata.name for o in items if o.metadata.name.startswith(prefix)}


def test_each_write_gets_its_own_result_or_error(masters3: LocalCluster) -> None:
    with masters3.client() as admin, BatchWriter(admin.transport) as w:
        futures: dict[str, concurrent.futures.Future[Any]] = {}
        lock = threading.Lock()

        def queue_writes(t: int) -> None:
            for i in range(25):
                name = f"b-{t}-{i}"
                f = w.create(_cm(name, value=name))
                with lock:
                    futures[name] = f

        threads = [threading.Thread(target=queue_writes, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        taken = w.create(_cm("b-0-0"))  # already exists
        bad = w.create(_cm("Not_A_Name"))  # invalid
        for name, f in futures.items():
            obj = f.result(60)
            assert (obj.metadata.name, obj.data["v"]) == (name, name)
            assert obj.metadata.resource_version
        with pytest.raises(errors.AlreadyExists, match="b-0-0"):
            taken.result(30)
        with pytest.raises(errors.Invalid, match="Not_A_Name"):
            bad.result(30)
        assert w.calls < len(futures) / 2, f"{w.calls} calls for {len(futures)} writes"
        updated = w.update(_cm("b-1-1", value="new")).result(30)
        assert updated.data["v"] == "new"
        gone = w.delete("ConfigMap", "b-1-2").result(30)
        assert gone.deleted
        with pytest.raises(errors.NotFound):
            w.delete("ConfigMap", "b-1-2").result(30)
    with masters3.client() as admin:
        assert len(_names(admin, "b-")) == 199


def test_each_write_in_a_batch_is_authorized_on_its_own(masters3: LocalCluster) -> None:
    """A user allowed ConfigMaps but not Secrets: in one batch the ConfigMap is created and the
    Secret refused, and no Secret exists afterwards."""
    with masters3.client() as admin:
        grant_configmap_writes(admin, ["batch-user"])
    creds = user_credentials(masters3, "batch-user")
    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "batch-secret", "default"
    with Client(masters3.endpoints(), credentials=creds) as user:
        with BatchWriter(user.transport, max_items=8) as w:
            with w.together():
                allowed = w.create(_cm("authz-cm"))
                refused = w.create(secret)
            assert allowed.result(30).metadata.name == "authz-cm"
            with pytest.raises(errors.Forbidden, match="secrets"):
                refused.result(30)
            assert w.calls == 1, "the two writes were not sent in one call"
    with masters3.client() as admin, pytest.raises(errors.NotFound):
        admin.get(core_pb2.Secret, "batch-secret", namespace="default")


def _pod(name: str) -> pod_pb2.Pod:
    p = pod_pb2.Pod(metadata={"name": name, "namespace": "default"})
    p.spec.containers.add(name="c", image="busybox:1")
    return p


def test_a_batched_bind_is_a_compare_and_swap(masters3: LocalCluster) -> None:
    """Two writers (two schedulers that both think they lead) bind the same pods to different
    nodes in batches: each pod is bound once, the other bind is a Conflict, and a bind to the
    node the pod is already on is a no-op; a user without pods/binding is refused per item."""
    names = [f"bind-{i}" for i in range(40)]
    with masters3.client() as admin:
        for n in names:
            admin.pods.create(_pod(n))
        with BatchWriter(admin.transport) as a, BatchWriter(admin.transport) as b:
            fa = {n: a.bind(n, "node-a", namespace="default") for n in names}
            fb = {n: b.bind(n, "node-b", namespace="default") for n in names}
            won: dict[str, str] = {}
            for n in names:
                for node, f in (("node-a", fa[n]), ("node-b", fb[n])):
                    try:
                        pod = f.result(60)
                    except errors.Conflict as exc:
                        assert "already assigned" in exc.message, exc.message
                        continue
                    assert n not in won, f"{n} bound twice: {won[n]} and {node}"
                    assert pod.spec.node_name == node
                    won[n] = node
            assert set(won) == set(names)
            again = a.bind(names[0], won[names[0]], namespace="default").result(30)
            assert again.spec.node_name == won[names[0]]
            assert a.calls < len(names), f"{a.calls} calls for {len(names)} binds"
        stored = {
            p.metadata.name: p.spec.node_name for p in admin.pods.list(namespace="default").items
        }
        assert all(stored[n] == won[n] for n in names)
        admin.pods.create(_pod("bind-refused"))
        grant_configmap_writes(admin, ["bind-user"])
    creds = user_credentials(masters3, "bind-user")
    with Client(masters3.endpoints(), credentials=creds) as user, BatchWriter(user.transport) as w:
        with pytest.raises(errors.Forbidden, match="binding"):
            w.bind("bind-refused", "node-a", namespace="default").result(30)
    with masters3.client() as admin:
        assert not admin.pods.get("bind-refused", namespace="default").spec.node_name


def test_a_fenced_writer_sends_nothing(masters3: LocalCluster) -> None:
    """A component whose term ended (fence true) fails its queued writes without sending."""
    ended = threading.Event()
    with masters3.client() as admin, BatchWriter(admin.transport, fence=ended.is_set) as w:
        assert w.create(_cm("fence-before")).result(30).metadata.name == "fence-before"
        ended.set()
        with pytest.raises(errors.Unavailable, match="term has ended"):
            w.create(_cm("fence-after")).result(30)
        assert w.calls == 1
        assert _names(admin, "fence-") == {"fence-before"}


def test_a_master_killed_mid_batch_fails_over_and_names_the_unknown_writes(
    masters3: LocalCluster,
) -> None:
    c = masters3
    results: dict[str, str] = {}
    with c.client(timeout=20) as client, BatchWriter(client.transport, max_items=32) as w:
        futures = {f"k-{i}": w.create(_cm(f"k-{i}")) for i in range(200)}
        victim = next(m for m in c.masters if m.api == client.transport.current())
        wait_for(lambda: sum(f.done() for f in futures.values()) >= 20, 60, "first writes")
        c.kill(victim)
        more = {f"k-{i}": w.create(_cm(f"k-{i}")) for i in range(200, 400)}
        futures.update(more)
        for name, f in futures.items():
            try:
                f.result(60)
                results[name] = "ok"
            except errors.OutcomeUnknown as exc:
                assert exc.request_id and name in str(exc)
                results[name] = "unknown"
        assert client.transport.current() != victim.api, "the client did not fail over"
    c.start(victim)
    c.wait_ready([victim], timeout=90)
    with c.client() as admin:
        present = _names(admin, "k-")
    acked = {n for n, r in results.items() if r == "ok"}
    assert acked, "no write was acknowledged"
    assert not acked - present, f"acknowledged writes missing: {sorted(acked - present)[:5]}"
    assert len(acked) >= 300, results
    print(f"{len(acked)} acknowledged, {len(results) - len(acked)} reported indefinite")


def test_writes_a_hung_master_never_answers_are_each_reported_indefinite(
    masters3: LocalCluster,
) -> None:
    """The client's only master stops answering (SIGSTOP) with a batch in flight: every write
    fails with OutcomeUnknown naming its own request id, and a retry with that id after the
    master resumes creates each object once."""
    c = masters3
    m = c.masters[0]
    assert m.proc is not None
    with Client([m.api], credentials=c.credentials, timeout=2) as client:
        with BatchWriter(client.transport, timeout=2) as w:
            assert w.create(_cm("hung-warm")).result(30).metadata.name == "hung-warm"
            os.kill(m.proc.pid, signal.SIGSTOP)
            try:
                with w.together():
                    futures = {f"hung-{i}": w.create(_cm(f"hung-{i}")) for i in range(10)}
                ids: dict[str, str] = {}
                for name, f in futures.items():
                    with pytest.raises(errors.OutcomeUnknown) as info:
                        f.result(30)
                    assert name in str(info.value) and info.value.request_id in str(info.value)
                    ids[name] = info.value.request_id
                assert len(set(ids.values())) == 10
            finally:
                os.kill(m.proc.pid, signal.SIGCONT)
    with c.client(timeout=30) as admin:
        for name, rid in ids.items():
            try:
                admin.create(_cm(name), request_id=rid)
            except errors.AlreadyExists:
                pytest.fail(f"{name}: a retry with its request id was not recognised")
        assert len(_names(admin, "hung-")) == 11


def test_each_item_takes_a_seat_and_is_audited_as_its_own_request(tmp_path: Path) -> None:
    """Few seats and short queues: 256 creates of one user in one batch do not get in together
    (the items beyond the user's flow's seats and queues are refused with a hint, and the writer
    sends them again after it), and the audit log has one Create record per item attempt."""
    audit = tmp_path / "audit.log"
    args = ["--max-requests-inflight", "30", "--flow-queue-length", "4"]
    c = LocalCluster(str(tmp_path / "c"), 3, extra_args=args)
    c.masters[0].extra_args += ["--audit-log-path", str(audit)]
    with c:
        with c.client() as admin:
            grant_configmap_writes(admin, ["batch-apf"])
        creds = user_credentials(c, "batch-apf")
        with Client([c.masters[0].api], credentials=creds, timeout=60) as user:
            with BatchWriter(user.transport, max_items=256, timeout=60) as w:
                with w.together():
                    futures = [w.create(_cm(f"apf-{i}")) for i in range(256)]
                for f in futures:
                    f.result(90)
                calls = w.calls

        def records() -> list[dict[str, Any]]:
            lines = audit.read_text().splitlines() if audit.exists() else []
            return [
                r
                for r in map(json.loads, lines)
                if r["user"] == "batch-apf" and r["method"] == "Create"
            ]

        wait_for(lambda: sum(r["code"] == "OK" for r in records()) == 256, 30, "audit records")
        refused = [r for r in records() if r["code"] == "RESOURCE_EXHAUSTED"]
        assert refused, "every item got a seat at once: flow control did not see the items"
        assert calls > 1
        assert {r["name"] for r in records()} == {f"apf-{i}" for i in range(256)}
        print(f"256 items: {len(refused)} refusals retried over {calls} calls")
