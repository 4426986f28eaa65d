"""Snapshots: saved online from any master, verified, and restored into a new cluster that then
serves every object at the snapshot's revision."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hakube.api.v1 import api_pb2
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.members import hakube
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(240)


def test_snapshot_saved_from_a_follower_restores_into_a_new_three_master_cluster(
    tmp_path: Path,
) -> None:
    snap = str(tmp_path / "backup.snap")
    with LocalCluster(str(tmp_path / "old"), 3) as old:
        api = Api(old.endpoints())
        names = {f"cm-{i}" for i in range(60)}
        for n in sorted(names):
            api.create_configmap(n, {"v": n * 3})
        follower = next(m for m in old.masters if m is not old.leader())
        saved = hakube("snapshot", "save", snap, "--server", follower.api)
        assert saved.returncode == 0, saved.stderr
        revision = api.call(
            "List", api_pb2.ListRequest(kind="ConfigMap", namespace="default")
        ).resource_version
        api.close()

    inspected = hakube("snapshot", "inspect", snap, "-o", "json")
    assert inspected.returncode == 0, inspected.stderr
    meta = json.loads(inspected.stdout)
    # Consistent at one revision: everything acknowledged before the save is in it.
    assert meta["revision"] == int(revision)
    assert meta["objects"]["ConfigMap"] == 60
    assert meta["objects"]["Namespace"] == 4
    assert len(meta["members"]) == 3 and meta["payload_sha256"]
    table = hakube("snapshot", "inspect", snap)
    assert "REVISION" in table.stdout and "ConfigMap" in table.stdout

    new = LocalCluster(str(tmp_path / "new"), 3)
    for m in new.masters:
        peers = ",".join(f"{o.name}={o.raft}" for o in new.masters if o is not m)
        done = hakube(
            "snapshot",
            "restore",
            snap,
            "--data-dir",
            m.data_dir,
            "--name",
            m.name,
            "--raft-listen",
            m.raft,
            "--peers",
            peers,
        )
        assert done.returncode == 0, done.stderr
    again = hakube(
        "snapshot",
        "restore",
        snap,
        "--data-dir",
        new.masters[0].data_dir,
        "--name",
        "m1",
        "--raft-listen",
        new.masters[0].raft,
    )
    assert again.returncode == 1 and "already holds Raft data" in again.stderr
    with new:
        api = Api(new.endpoints())
        for i in range(3):
            assert api.names(via=i) == names
        got = api.call(
            "Get", api_pb2.GetRequest(kind="ConfigMap", namespace="default", name="cm-7")
        )
        assert got.config_map.data["v"] == "cm-7" * 3
        # The restored store continues after the snapshot's revision.
        created = api.create_configmap("after-restore")
        assert int(created.config_map.metadata.resource_version) > meta["revision"]
        members = hakube("members", "list", "-o", "json", "--server", new.masters[0].api)
        listed = json.loads(members.stdout)
        assert sorted(m["name"] for m in listed["members"] if m["voter"]) == ["m1", "m2", "m3"]
        api.close()


def test_a_corrupt_or_truncated_snapshot_is_refused_with_one_line(tmp_path: Path) -> None:
    snap = str(tmp_path / "s.snap")
    with LocalCluster(str(tmp_path / "c"), 1) as c:
        Api(c.endpoints()).create_configmap("x")
        assert hakube("snapshot", "save", snap, "-s", c.masters[0].api).returncode == 0
    data = Path(snap).read_bytes()
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    bad = tmp_path / "bad.snap"
    bad.write_bytes(bytes(flipped))
    short = tmp_path / "short.snap"
    short.write_bytes(data[:-5])
    for path, words in ((bad, "sha256"), (short, "truncated"), (tmp_path / "none", "cannot read")):
        for cmd in (
            ["inspect", str(path)],
            [
                "restore",
                str(path),
                "--data-dir",
                str(tmp_path / "d"),
                "--name",
                "m1",
                "--raft-listen",
                "127.0.0.1:1",
            ],
        ):
            r = hakube("snapshot", *cmd)
            assert r.returncode == 1
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert words in r.stderr
    assert not os.path.exists(tmp_path / "d" / "raft.dump")


def test_save_without_a_reachable_master_says_so(tmp_path: Path) -> None:
    r = hakube("snapshot", "save", str(tmp_path / "s"), "-s", "127.0.0.1:1")
    assert r.returncode == 1 and "no master answered" in r.stderr
    assert not os.path.exists(tmp_path / "s")


def test_scheduled_snapshots_are_written_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    args = ["--snapshot-dir", str(out), "--snapshot-interval", "0.3", "--snapshot-retain", "2"]
    with LocalCluster(str(tmp_path / "c"), 1, extra_args=args) as c:
        log = c.masters[0].log_path

        def taken() -> int:
            return Path(log).read_text().count(f"scheduled snapshot {out}")

        # Snapshots start with the master: count those taken after the write.
        before = taken()
        Api(c.endpoints()).create_configmap("x")
        wait_for(
            lambda: taken() >= max(4, before + 3),
            30,
            "four scheduled snapshots",
        )
    files = sorted(os.listdir(out))
    assert len(files) == 2 and all(f.startswith("hakube-m1-") for f in files)
    r = hakube("snapshot", "inspect", str(out / files[-1]), "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["objects"]["ConfigMap"] == 1
