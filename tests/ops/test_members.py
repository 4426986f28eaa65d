"""Membership: grow 3 -> 5 and shrink 5 -> 3 while a client writes, restart every master after
each change (with stale --peers flags), and no acknowledged write is lost; changes that would
lose quorum are refused; removed names are never reused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.members import Writer, hakube, new_master, restart_all, wait_listening
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(300)


def members(c: LocalCluster) -> dict[str, Any]:
    servers = ",".join(m.api for m in c.masters if m.alive)
    r = hakube("members", "list", "-o", "json", "--server", servers)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def voters(c: LocalCluster) -> list[str]:
    return sorted(m["name"] for m in members(c)["members"] if m["voter"])


def test_grow_to_five_and_shrink_to_three_while_writing_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    c = LocalCluster(str(tmp_path / "c"), 3)
    with c:
        original = {m.name: m.raft for m in c.masters}
        m4, m5 = new_master(c, "m4"), new_master(c, "m5")
        c.masters[3:] = []  # not members yet
        writer = Writer(Api([m.api for m in (*c.masters, m4, m5)]), "w")
        writer.start()
        wait_for(lambda: len(writer.acked) > 20, 30, "writes to flow")

        for new in (m4, m5):
            added = hakube(
                "members", "add", new.name, "--raft", new.raft, "--api", new.api,
                "--server", c.masters[0].api,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            assert "start it now" in added.stdout
            c.masters.append(new)
            c.start(new)
            c.wait_ready([new], timeout=60)
        assert voters(c) == ["m1", "m2", "m3", "m4", "m5"]
        acked = len(writer.acked)
        restart_all(c, original)  # flags name only the first three
        writer.reconnect()
        assert voters(c) == ["m1", "m2", "m3", "m4", "m5"]
        wait_for(lambda: len(writer.acked) > acked + 20, 60, "writes after restarting five")

        leader = c.leader().name
        # Remove the leader first (the CLI moves leadership away), then another original.
        for gone in (leader, next(n for n in ("m1", "m2", "m3") if n != leader)):
            removed = hakube("members", "remove", gone, "--server", c.masters[-1].api)
            assert removed.returncode == 0, removed.stderr
            m = next(m for m in c.masters if m.name == gone)
            c.terminate(m)
            c.masters.remove(m)
        survivors = sorted(m.name for m in c.masters)
        assert voters(c) == survivors
        acked = len(writer.acked)
        restart_all(c, {**original, "m4": m4.raft, "m5": m5.raft})  # names the removed too
        writer.reconnect()
        assert voters(c) == survivors
        wait_for(lambda: len(writer.acked) > acked + 20, 60, "writes after shrinking")
        writer.finish()

        listed = members(c)
        assert sorted(listed["removed"]) == sorted({leader, gone})
        reuse = hakube(
            "members", "add", gone, "--raft", "127.0.0.1:1", "--api", "127.0.0.1:2",
            "--server", c.masters[0].api,
        )  # fmt: skip
        assert reuse.returncode == 1 and "never reused" in reuse.stderr
        api = Api(c.endpoints())
        stored = api.names()
        api.close()
        lost = set(writer.acked) - stored
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {sorted(lost)[:5]}"
        assert len(writer.acked) > 100


def test_a_removal_that_would_lose_quorum_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with LocalCluster(str(tmp_path / "c"), 3) as c:
        leader = c.leader()
        followers = [m for m in c.masters if m is not leader]
        c.kill(followers[1])
        r = hakube("members", "remove", followers[0].name, "--server", leader.api)
        assert r.returncode == 1
        assert "quorum" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert voters(c) == ["m1", "m2", "m3"]
        # A member that is down can still be removed while the rest keep a quorum.
        r = hakube("members", "remove", followers[1].name, "--server", leader.api)
        assert r.returncode == 0, r.stderr
        assert len(voters(c)) == 2
        api = Api([m.api for m in c.masters if m.alive])
        api.create_configmap("after-removal")
        api.close()


def test_transfer_leader_moves_leadership_to_the_named_member(tmp_path: Path) -> None:
    with LocalCluster(str(tmp_path / "c"), 3) as c:
        leader = c.leader()
        target = next(m for m in c.masters if m is not leader)
        start = time.monotonic()
        r = hakube("members", "transfer-leader", target.name, "--server", leader.api)
        assert r.returncode == 0, r.stderr
        assert c.leader().name == target.name
        assert time.monotonic() - start < 15
        bad = hakube("members", "transfer-leader", "nosuch", "--server", leader.api)
        assert bad.returncode == 1 and "nosuch" in bad.stderr


def test_a_member_added_after_log_compaction_gets_the_dump_and_keeps_its_membership(
    tmp_path: Path,
) -> None:
    args = ["--compaction-min-entries", "30"]
    c = LocalCluster(str(tmp_path / "c"), 3, extra_args=args)
    with c:
        api = Api(c.endpoints())
        names = {f"cm-{i}" for i in range(80)}
        for n in sorted(names):
            api.create_configmap(n)
        dumps = [Path(m.data_dir, "raft.dump") for m in c.masters]
        wait_for(lambda: all(d.exists() for d in dumps), 60, "every master to compact its log")
        m4 = new_master(c, "m4")
        m4.extra_args = list(args)
        added = hakube(
            "members", "add", "m4", "--raft", m4.raft, "--api", m4.api,
            "--server", c.masters[0].api,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        c.start(m4)
        c.wait_ready([m4], timeout=60)
        api.close()
        api = Api([m4.api])
        assert names <= api.names(via=0)
        api.close()
        # The dump it installed named the old members; its own configuration still lists all.
        restart_all(c)
        assert voters(c) == ["m1", "m2", "m3", "m4"]
        listed = json.loads(Path(m4.data_dir, "members.json").read_text())
        assert sorted(listed["peers"]) == ["m1", "m2", "m3"]


def test_a_dead_master_is_replaced_by_a_fresh_one_while_writes_go_on(tmp_path: Path) -> None:
    """The day-2 routine after losing a machine: remove the dead member, add a new one on a
    fresh data dir, never losing the quorum (and so never stopping writes)."""
    c = LocalCluster(str(tmp_path / "c"), 3)
    with c:
        dead = c.leader()  # the worst case: it led
        c.kill(dead)
        live = [m for m in c.masters if m is not dead]
        writer = Writer(Api([m.api for m in live]), "r")
        writer.start()
        wait_for(lambda: len(writer.acked) > 20, 30, "writes on the two survivors")

        removed = hakube("members", "remove", dead.name, "--server", live[0].api)
        assert removed.returncode == 0, removed.stderr
        c.masters.remove(dead)
        m4 = new_master(c, "m4")
        added = hakube(
            "members", "add", "m4", "--raft", m4.raft, "--api", m4.api, "--server", live[0].api
        )
        assert added.returncode == 0, added.stderr
        c.start(m4)
        c.wait_ready([m4], timeout=60)
        assert voters(c) == sorted(m.name for m in c.masters)
        acked = len(writer.acked)
        wait_for(lambda: len(writer.acked) > acked + 20, 30, "writes after the replacement")
        writer.finish()
        assert not writer.failed, f"writes failed during the replacement: {writer.failed[:3]}"

        # The dead machine comes back on its old disk: it is no member and stays out.
        c.start(dead)
        try:
            wait_listening(dead.api)
            watch_until = time.monotonic() + 5  # long enough for several election timeouts
            while time.monotonic() < watch_until:
                assert not c.is_ready(dead), "the removed master became ready again"
            assert voters(c) == sorted(m.name for m in c.masters)
        finally:
            c.terminate(dead)  # no longer in c.masters: the cluster would not stop it
        stored = Api([m4.api]).names(via=0)
        lost = set(writer.acked) - stored
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {sorted(lost)[:5]}"
