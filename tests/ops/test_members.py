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
from hakube.testing.members import Writer, hakube, new_master, restart_all
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
