"""Crash at every step of compaction and snapshot install: a master killed (SIGKILL, by an armed
failpoint, hakube/store/failpoints.py) at each point restarts with every acknowledged write.

The compaction points are armed on every master at once, so all three die at the same step of
their own compaction and no healthy replica can mask what one of them lost; the snapshot points
on a follower that is made to need the leader's snapshot.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hakube.api.v1 import core_pb2
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(240)

COMPACT_EVERY = ["--compaction-min-entries", "60"]


def _write(client: object, names: range) -> None:
    for i in names:
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = f"cm-{i}", "default"
        cm.data["i"] = str(i)
        client.create(cm)  # type: ignore[attr-defined]


def _names(c: LocalCluster, endpoint: str | None = None) -> set[str]:
    with c.client() if endpoint is None else _one(c, endpoint) as cl:
        return {o.metadata.name for o in cl.list("configmaps", namespace="default").items}


def _one(c: LocalCluster, endpoint: str) -> object:
    from hakube.client import Client

    return Client([endpoint], credentials=c.credentials)


@pytest.mark.parametrize(
    "point", ["dump-before-rename", "dump-after-rename", "compaction-before-journal-drop"]
)
def test_every_master_killed_at_the_same_compaction_step_loses_nothing(
    tmp_path: Path, point: str
) -> None:
    with LocalCluster(str(tmp_path), 3, extra_args=COMPACT_EVERY) as c:
        with c.client() as cl:
            _write(cl, range(30))
        acked = {f"cm-{i}" for i in range(30)}
        for m in c.masters:  # restart every master with the point armed
            c.kill(m)
        base = dict(c.env)
        c.env["HAKUBE_FAILPOINTS"] = point
        for m in c.masters:
            c.start(m)
        c.env = base
        last_ok = time.monotonic()
        with c.client(timeout=3.0) as cl:
            i = 100
            # Until every master died at the point, or the survivors lost their quorum (a
            # master left alone never compacts again, so it never reaches the point): no write
            # for 30 s. A time, not a count of failures: the restarted masters may take many
            # seconds to elect a leader on a loaded machine.
            while any(m.alive for m in c.masters) and time.monotonic() - last_ok < 30 and i < 3000:
                try:
                    _write(cl, range(i, i + 1))
                    acked.add(f"cm-{i}")
                    last_ok = time.monotonic()
                except Exception:  # noqa: BLE001 - the masters are dying: outcome unknown
                    pass
                i += 1
        died = [m.name for m in c.masters if not m.alive]
        assert died, f"no master reached {point}"
        for m in c.masters:
            c.kill(m)  # the survivors crash too, wherever they are
        c.start_all(wait=90)
        missing = acked - _names(c)
        assert not missing, f"lost {len(missing)} acknowledged writes after {point}"
        with c.client() as cl:
            _write(cl, range(5000, 5001))  # and the cluster still takes writes


@pytest.mark.parametrize("point", ["snapshot-before-rename", "snapshot-after-rename"])
def test_a_follower_killed_while_installing_a_snapshot_recovers(tmp_path: Path, point: str) -> None:
    with LocalCluster(str(tmp_path), 3, extra_args=COMPACT_EVERY) as c:
        c.start_all()
        follower = next(m for m in c.masters if m is not c.leader())
        c.kill(follower)
        with c.client() as cl:
            _write(cl, range(300))  # the others compact: the follower needs a snapshot
        base = dict(c.env)
        c.env["HAKUBE_FAILPOINTS"] = point
        c.start(follower)
        c.env = base
        wait_for(lambda: not follower.alive, 60, f"the follower to die at {point}")
        c.start(follower)
        c.wait_ready([follower], timeout=90)
        wait_for(
            lambda: len(_names(c, follower.api)) == 300,
            60,
            "the restarted follower to hold every write",
        )


def test_an_unknown_failpoint_is_refused(tmp_path: Path) -> None:
    c = LocalCluster(str(tmp_path), 1, env={"HAKUBE_FAILPOINTS": "nowhere"})
    try:
        c.start(c.masters[0])
        wait_for(lambda: not c.masters[0].alive, 30, "the master to refuse to start")
        assert "unknown point(s) nowhere" in Path(c.masters[0].log_path).read_text()
    finally:
        c.stop_all()
