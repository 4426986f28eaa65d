"""Quorum loss: two of three masters gone for good; ``--force-new-cluster`` on the survivor keeps
every acknowledged write, refuses to run twice, ignores the old members, and fresh masters join."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.members import Writer, hakube, new_master, wait_listening
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(300)


def test_force_new_cluster_on_the_survivor_keeps_all_data_and_fresh_masters_join(
    tmp_path: Path,
) -> None:
    c = LocalCluster(str(tmp_path / "c"), 3)
    with c:
        writer = Writer(Api(c.endpoints()), "w")
        writer.start()
        wait_for(lambda: len(writer.acked) > 100, 60, "writes to flow")
        survivor, *lost = c.masters
        for m in lost:  # gone for good, mid-write
            c.kill(m)
        # The write in flight now can never be acknowledged (no quorum): no need to wait out
        # its retries. Whatever was acknowledged before must survive.
        writer.stop.set()
        acked = set(writer.acked)
        assert (
            not c.is_ready(survivor)
            or wait_for(lambda: not c.is_ready(survivor), 10, "the survivor to see it lost quorum")
            is None
        )
        c.terminate(survivor)

        survivor.extra_args = ["--force-new-cluster"]
        c.masters = [survivor]
        c.start(survivor)
        c.wait_ready([survivor], timeout=60)
        api = Api([survivor.api])
        stored = api.names()
        assert acked <= stored, f"lost {sorted(acked - stored)[:5]}"
        api.create_configmap("after-force")
        api.close()
        assert os.path.exists(os.path.join(survivor.data_dir, "force-new-cluster.done"))

        # The same command again (e.g. a unit file left unchanged) is refused.
        c.terminate(survivor)
        c.start(survivor)
        assert survivor.proc is not None and survivor.proc.wait(30) != 0
        assert "already ran" in c.tail(survivor)
        survivor.extra_args = []
        c.start(survivor)
        c.wait_ready([survivor], timeout=60)

        # An old member coming back with its stale data dir is not let in.
        c.start(lost[0])
        m4 = new_master(c, "m4")
        add4 = ("members", "add", "m4", "--raft", m4.raft, "--api", m4.api, "-s", survivor.api)
        # Growing from one member needs the new one running (its vote commits the change).
        early = hakube(*add4)
        assert early.returncode == 1 and 'start "m4" first' in early.stderr
        for name in ("m4", "m5"):
            m = m4 if name == "m4" else new_master(c, name)
            c.start(m)  # started first: it waits, refused by the members, until it is added
            wait_listening(m.raft)
            added = hakube(
                "members", "add", name, "--raft", m.raft, "--api", m.api,
                "--server", survivor.api,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            c.wait_ready([survivor, m], timeout=60)
        new = [m for m in c.masters if m.name in ("m4", "m5")]
        listed = hakube("members", "list", "--server", survivor.api)
        assert "m2" in listed.stdout.split("removed (never reused):")[1]
        api = Api([m.api for m in new])
        for i in range(2):
            assert acked | {"after-force"} <= api.names(via=i)
        api.close()
        assert not c.is_ready(lost[0])
        c.kill(survivor)  # the two fresh masters keep a quorum of three
        c.wait_ready(new, timeout=30)
        api = Api([m.api for m in new])
        api.create_configmap("without-the-survivor")
        api.close()
        c.kill(lost[0])
        writer.finish()
