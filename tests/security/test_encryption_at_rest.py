"""Secrets encrypted at rest: no plain Secret value in any master's files or in a snapshot, key
rotation without downtime, and masters that cannot read the stored Secrets refuse to start.

"Not on the Raft wire" is shown through the followers' files: the Raft transport is TLS, so the
bytes on the socket are ciphertext by construction; what a follower stores in its journal and
dumps is exactly the command the leader proposed, and it holds no canary.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hakube.api.v1 import core_pb2
from hakube.apiserver.encryption import API_VERSION, PREFIX
from hakube.client import Client
from hakube.client.ops import OpsClient
from hakube.local import procs
from hakube.local.cluster import LocalCluster as Cluster
from hakube.local.cluster import MasterProc
from hakube.store import snapshot
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(240)


def key_config(path: str, keys: list[tuple[str, bytes]], identity: bool = True) -> str:
    """Write an EncryptionConfiguration (0600) with these aesgcm keys, identity last."""
    providers: list[dict[str, Any]] = []
    if keys:
        providers.append(
            {
                "aesgcm": {
                    "keys": [{"name": n, "secret": base64.b64encode(k).decode()} for n, k in keys]
                }
            }
        )
    if identity:
        providers.append({"identity": {}})
    doc = {
        "apiVersion": API_VERSION,
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def files_under(*roots: str) -> list[str]:
    out: list[str] = []
    for root in roots:
        for d, _, names in os.walk(root):
            out.extend(os.path.join(d, n) for n in names)
    return out


def holding(paths: list[str], needles: list[bytes]) -> list[str]:
    found: list[str] = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        found.extend(f"{p} holds {n!r}" for n in needles if n in data)
    return found


def save_snapshot(c: Cluster, path: str) -> snapshot.Snapshot:
    out = subprocess.run(
        procs.hakube_argv("snapshot", "save", path, "-s", c.endpoints()[0]),
        capture_output=True,
        text=True,
        timeout=60,
        env=c.env,
    )
    assert out.returncode == 0, out.stderr
    return snapshot.load(path)


def secret(name: str, value: bytes) -> core_pb2.Secret:
    s = core_pb2.Secret(metadata={"name": name, "labels": {"app": "canary"}})
    s.data["password"] = value
    return s


def test_no_plain_secret_value_reaches_journal_dumps_snapshots_or_followers(tmp_path: Any) -> None:
    conf = key_config(str(tmp_path / "enc.yaml"), [("key1", os.urandom(32))])
    canary = f"canary-{uuid.uuid4().hex}".encode()
    needles = [canary, base64.b64encode(canary), canary.hex().encode()]
    args = ["--encryption-provider-config", conf, "--compaction-min-entries", "40"]
    with LocalCluster(str(tmp_path / "c"), 3, extra_args=args) as c, c.client() as client:
        db = client.create(secret("db", canary))
        s2 = core_pb2.Secret(metadata={"name": "str"})
        s2.string_data["token"] = canary.decode()
        client.create(s2)
        # Enough writes that every master compacts its log into a dump.
        for i in range(120):
            client.create(core_pb2.ConfigMap(metadata={"name": f"fill-{i}"}))
        wait_for(
            lambda: all(os.path.exists(os.path.join(m.data_dir, "raft.dump")) for m in c.masters),
            60,
            "every master compacted",
        )
        snap = save_snapshot(c, str(tmp_path / "backup.snap"))
        leader = c.leader()
        followers = [m for m in c.masters if m is not leader]
        paths = files_under(*(m.data_dir for m in c.masters)) + [str(tmp_path / "backup.snap")]
        assert any(p.endswith("raft.journal") for p in paths)
        assert holding(paths, needles) == []
        # The check can fail: the same value in a ConfigMap (not encrypted) is found.
        cm = core_pb2.ConfigMap(metadata={"name": "plain"})
        cm.binary_data["x"] = canary
        client.create(cm)
        wait_for(
            lambda: holding([os.path.join(followers[0].data_dir, "raft.journal")], [canary]) != [],
            10,
            "a plain value in a follower's journal",
        )
        stored = snap.state["objects"]["Secret"][("default", "db")].value
        assert stored.startswith(PREFIX + b"aesgcm:v1:key1:")
        # Reads, lists and watches decrypt for the client.
        assert client.get(core_pb2.Secret, "db").data["password"] == canary
        assert client.get(core_pb2.Secret, "str").data["token"] == canary
        listed = client.list(core_pb2.Secret, label_selector="app=canary").items
        assert [s.data["password"] for s in listed] == [canary]
        with (
            c.client() as watcher,
            watcher.watch(
                core_pb2.Secret,
                namespace="default",
                resource_version=int(db.metadata.resource_version) - 1,
            ) as w,
        ):
            seen: dict[str, bytes] = {}
            client.create(secret("later", canary + b"-2"))
            for ev in w:
                assert ev.object is not None
                seen[ev.object.metadata.name] = bytes(ev.object.data.get("password", b""))
                if "later" in seen:
                    break
        assert seen["db"] == canary and seen["later"] == canary + b"-2"


@contextlib.contextmanager
def key1_cluster(tmp_path: Any, conf: str, k1: bytes) -> Iterator[tuple[Cluster, Any]]:
    """Three masters encrypting with key1 (config at ``conf``), Secrets s0..s4 = v0..v4."""
    key_config(conf, [("key1", k1)])
    with (
        LocalCluster(
            str(tmp_path / "c"), 3, extra_args=["--encryption-provider-config", conf]
        ) as c,
        c.client() as client,
    ):
        for i in range(5):
            client.create(secret(f"s{i}", f"v{i}".encode()))
        yield c, client


def restart(c: Cluster, m: MasterProc) -> None:
    c.terminate(m)
    c.start(m)
    c.wait_ready([m], timeout=60)


def rolling_restart(c: Cluster) -> None:
    for m in c.masters:
        restart(c, m)


def stored_prefixes(c: Cluster) -> set[bytes]:
    """How the stored Secrets are sealed, from a snapshot (taken in this process: the CLI's
    own test is in tests/ops)."""
    with OpsClient(c.endpoints(), credentials=c.credentials) as ops:
        _, data = ops.save_snapshot()
    snap = snapshot.decode(data)
    return {rec.value[: len(PREFIX) + 15] for rec in snap.state["objects"]["Secret"].values()}


def start_refused(c: Cluster, m: MasterProc, data_dir: str, extra: list[str]) -> Refusal:
    """Start a master as ``m`` (stopped) but on ``data_dir`` and with ``extra`` flags instead of
    its own, expecting it to exit with status 1."""
    argv = c.command(m)
    argv[argv.index("--data-dir") + 1] = data_dir
    log = f"{data_dir}.refused.log"
    if os.path.exists(log):
        os.unlink(log)
    return Refusal(procs.spawn([*argv, *extra], log, env=c.env), log)


@dataclasses.dataclass
class Refusal:
    proc: subprocess.Popen[bytes]
    log: str

    def last_line(self) -> str:
        """The refused master's last log line, once it has exited with status 1."""
        assert self.proc.wait(60) == 1
        with open(self.log) as f:
            return f.read().strip().splitlines()[-1]


def test_keys_rotate_without_downtime_and_wrong_or_missing_keys_refuse_to_start(
    tmp_path: Any,
) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    conf = str(tmp_path / "enc.yaml")
    with key1_cluster(tmp_path, conf, k1) as (c, client):
        assert stored_prefixes(c) == {PREFIX + b"aesgcm:v1:key1:"}
        # 1. key2 known everywhere (decrypt only), 2. key2 first, 3. re-encrypt, 4. drop key1.
        key_config(conf, [("key1", k1), ("key2", k2)])
        rolling_restart(c)
        key_config(conf, [("key2", k2), ("key1", k1)])
        rolling_restart(c)
        client.create(secret("new", b"fresh"))
        for i in range(5, 60):
            client.create(secret(f"s{i}", f"v{i}".encode()))
        # Re-encryption while a writer keeps changing some Secrets: its CAS never overwrites
        # a concurrent write (each acknowledged value is the one that stays).
        last: dict[str, bytes] = {}
        stop = threading.Event()

        def writer() -> None:
            with c.client() as w:
                n = 0
                while not stop.is_set():
                    name = f"s{n % 5}"
                    cur = w.get(core_pb2.Secret, name)
                    cur.data["password"] = f"w{n}".encode()
                    w.update(cur)  # CAS on the version just read
                    last[name] = f"w{n}".encode()
                    n += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            out = subprocess.run(
                procs.hakube_argv("secrets", "reencrypt", "-s", c.endpoints()[1]),
                capture_output=True,
                text=True,
                timeout=120,
                env=c.env,
            )
        finally:
            stop.set()
            t.join(30)
        assert out.returncode == 0, out.stderr
        assert len(last) == 5
        for name, value in last.items():
            assert client.get(core_pb2.Secret, name).data["password"] == value
        assert stored_prefixes(c) == {PREFIX + b"aesgcm:v1:key2:"}
        # A second run finds nothing to rewrite: no Secret gets a new revision.
        before = {
            s.metadata.name: s.metadata.resource_version for s in client.list(core_pb2.Secret).items
        }
        out = subprocess.run(
            procs.hakube_argv("secrets", "reencrypt", "-s", c.endpoints()[0]),
            capture_output=True,
            text=True,
            timeout=60,
            env=c.env,
        )
        assert out.returncode == 0, out.stderr
        assert {
            s.metadata.name: s.metadata.resource_version for s in client.list(core_pb2.Secret).items
        } == before
        # 4. key1 dropped: m1 and m2 restart with key2 alone; m3 first shows what a master
        # refuses to start with, then restarts with key2 alone too.
        key_config(conf, [("key2", k2)])
        m = c.masters[2]
        for other in c.masters[:2]:
            restart(c, other)
        c.terminate(m)
        m.extra_args = []
        # The two refusals about the key file (checked before any data is read or any port
        # bound) run on new data directories while m3 itself shows the two about its stored
        # Secrets, one after the other (those come after it has caught up with the leader).
        bad = key_config(str(tmp_path / "bad.yaml"), [("key2", os.urandom(32))])
        readable = key_config(str(tmp_path / "readable.yaml"), [("key2", k2)])
        os.chmod(readable, 0o644)
        flag = "--encryption-provider-config"
        # The key file is missing.
        missing = start_refused(c, m, str(tmp_path / "new-1"), [flag, str(tmp_path / "no.yaml")])
        # A key file others can read.
        world = start_refused(c, m, str(tmp_path / "new-2"), [flag, readable])
        # A key with the right name but another secret cannot open the stored Secrets.
        line = start_refused(c, m, m.data_dir, [flag, bad]).last_line()
        assert "cannot decrypt stored data" in line and "key2" in line, line
        # No config at all: the stored Secrets are sealed, so it refuses too.
        line = start_refused(c, m, m.data_dir, []).last_line()
        assert "cannot decrypt stored data" in line, line
        line = missing.last_line()
        assert line.startswith("hakube master: encryption config") and "does not exist" in line
        line = world.last_line()
        assert "chmod 600" in line, line
        m.extra_args = [flag, conf]
        c.start(m)
        c.wait_ready([m], timeout=60)
        assert {
            s.metadata.name: s.data["password"] for s in client.list(core_pb2.Secret).items
        } == {**last, **{f"s{i}": f"v{i}".encode() for i in range(5, 60)}, "new": b"fresh"}
        with Client([m.api], credentials=c.credentials) as again:  # through m3 itself
            assert again.get(core_pb2.Secret, "s7").data["password"] == b"v7"


def log_count(m: MasterProc, text: str) -> int:
    with open(m.log_path, errors="replace") as f:
        return f.read().count(text)


def sighup_all(c: Cluster, expect: str) -> None:
    """SIGHUP every master (processes this test started) and wait for ``expect`` in each log."""
    before = {m.name: log_count(m, expect) for m in c.masters}
    for m in c.masters:
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGHUP)
    wait_for(
        lambda: all(log_count(m, expect) > before[m.name] for m in c.masters),
        20,
        f"{expect!r} logged by every master",
    )


def test_keys_rotate_on_sighup_and_a_bad_reload_keeps_the_old_keys(tmp_path: Any) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    conf = str(tmp_path / "enc.yaml")
    with key1_cluster(tmp_path, conf, k1) as (c, client):
        pids = [m.proc.pid for m in c.masters if m.proc is not None]
        key_config(conf, [("key1", k1), ("key2", k2)])
        sighup_all(c, 'writes use Secret: aesgcm key "key1"')
        key_config(conf, [("key2", k2), ("key1", k1)])
        sighup_all(c, 'writes use Secret: aesgcm key "key2"')
        out = subprocess.run(
            procs.hakube_argv("secrets", "reencrypt", "-s", c.endpoints()[0]),
            capture_output=True,
            text=True,
            timeout=60,
            env=c.env,
        )
        assert out.returncode == 0, out.stderr
        assert stored_prefixes(c) == {PREFIX + b"aesgcm:v1:key2:"}
        # A config without key2 cannot open what is stored: refused, key2 stays in use.
        key_config(conf, [("key1", k1)])
        sighup_all(c, "encryption config not reloaded, the old keys stay in use")
        client.create(secret("after-bad", b"x"))
        key_config(conf, [("key2", k2)])
        sighup_all(c, 'writes use Secret: aesgcm key "key2"')
        assert stored_prefixes(c) == {PREFIX + b"aesgcm:v1:key2:"}
        assert {
            s.metadata.name: s.data["password"] for s in client.list(core_pb2.Secret).items
        } == {**{f"s{i}": f"v{i}".encode() for i in range(5)}, "after-bad": b"x"}
        assert [m.proc.pid for m in c.masters if m.proc is not None] == pids  # no restart
