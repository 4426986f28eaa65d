"""Power cuts: masters whose data directories are lazy file systems (hakube/testing/lazyfs), which
keep across a cut only what was synced. A kill -9 keeps the page cache; these tests do not.

- Every master cut at once, with ``--fsync`` (the default): no acknowledged write is lost, and
  the cluster comes back.
- The same with ``--no-fsync``: the acknowledged writes are lost — the test can fail, and the
  flag's help says what it costs.
- The leader killed between sending new entries and syncing them (leader-parallel sync), its
  unsynced data then dropped: the followers' durable copies carry every acknowledged write.
- One member cut (a follower, then the leader) while the others go on: it rejoins with every
  write and no two members ever lead in one term (the term and vote are synced before a vote).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakube.api.v1 import core_pb2
from hakube.client import Client, HakubeError
from hakube.store.durable import DurableMeta
from hakube.store.journal import SafeFileJournal
from hakube.testing.lazyfs import LazyFS, unavailable_reason
from hakube.testing.lazyfs.cluster import LazyCluster, LeaderLog
from hakube.testing.wait import wait_for
from tests.conftest import require

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _fuse() -> None:
    require(unavailable_reason())


class Writer:
    """Creates ConfigMaps cm-0, cm-1, … in a thread until stopped; records which ones were
    acknowledged (an error leaves the outcome unknown: not counted either way)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.acked: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._i = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            cm = core_pb2.ConfigMap()
            cm.metadata.name, cm.metadata.namespace = f"cm-{self._i}", "default"
            self._i += 1
            try:
                self.client.create(cm)
            except HakubeError:
                self._stop.wait(0.05)
                continue
            self.acked.add(cm.metadata.name)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _names(c: LazyCluster, endpoint: str | None = None) -> set[str]:
    endpoints = [endpoint] if endpoint else c.endpoints()
    with Client(endpoints, credentials=c.credentials, timeout=10) as cl:
        return {o.metadata.name for o in cl.list("configmaps", namespace="default").items}


def _write_then_cut_everything(c: LazyCluster, at_least: int) -> set[str]:
    """Writes going on while the power of every master is cut; the acknowledged names."""
    with c.client(timeout=3) as cl, Writer(cl) as w:
        wait_for(lambda: len(w.acked) >= at_least, 60, f"{at_least} acknowledged writes")
        c.power_cut(c.masters)
    return w.acked


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LazyCluster]:
    with LazyCluster(str(tmp_path), 3, extra_args=getattr(request, "param", [])) as c:
        yield c


@pytest.mark.parametrize(
    "cluster",
    [[], ["--compaction-min-entries", "50"]],
    ids=["journal", "compacting"],
    indirect=True,
)
def test_a_power_cut_of_every_master_loses_no_acknowledged_write(cluster: LazyCluster) -> None:
    """Also while the masters compact every 50 entries: dumps and journals replaced by rename
    (durable_replace) while the writes go on."""
    acked = _write_then_cut_everything(cluster, 150)
    cluster.start_all(wait=90)
    missing = acked - _names(cluster)
    assert not missing, f"lost {len(missing)} of {len(acked)} acknowledged writes: {missing}"
    with cluster.client(timeout=10) as cl:  # and it takes writes again
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = "after-the-cut", "default"
        cl.create(cm)
    dumps = [os.path.exists(os.path.join(d.backing, "raft.dump")) for d in cluster.disks.values()]
    assert all(dumps) == ("--compaction-min-entries" in cluster.masters[0].extra_args)
    print(f"--fsync: {len(acked)} acknowledged before the cut, 0 lost")


def test_a_leader_cut_between_its_send_and_its_sync_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    """Each master dies at its 200th sync as leader, after sending the entries it covers and
    before syncing them (failpoint ``leader-before-sync``); its disk then loses whatever it had
    not synced. Writes go on under the next leader, then every master loses its power."""
    armed = {"HAKUBE_FAILPOINTS": "leader-before-sync@200"}
    with LazyCluster(str(tmp_path), 3, env=armed) as c:
        with c.client(timeout=3) as cl, Writer(cl) as w:
            wait_for(lambda: any(not m.alive for m in c.masters), 90, "a leader to reach the point")
            died = [m for m in c.masters if not m.alive]
            before = len(w.acked)
            for m in died:
                c.disks[m.name].cut()  # the power of the dead leader: its unsynced writes gone
            seen = len(w.acked)
            wait_for(lambda: len(w.acked) >= seen + 10, 60, "writes under the next leader")
            c.power_cut([m for m in c.masters if m.alive])
        acked = w.acked
        c.env = {k: v for k, v in c.env.items() if k != "HAKUBE_FAILPOINTS"}
        c.start_all(wait=90)
        missing = acked - _names(c)
        assert not missing, f"lost {len(missing)} of {len(acked)} acknowledged writes: {missing}"
        assert before > 0, "the leader died before any write was acknowledged"
        print(f"leader-before-sync: {[m.name for m in died]} died after {before} acknowledged")
        print(f"writes; {len(acked)} acknowledged in all, 0 lost")


@pytest.mark.parametrize("cluster", [["--no-fsync"]], indirect=True)
def test_without_fsync_a_power_cut_of_every_master_loses_acknowledged_writes(
    cluster: LazyCluster,
) -> None:
    """Nothing syncs the journal in this mode, and the lazy disk writes nothing back by
    itself: every entry since the masters started is gone, on all three."""
    acked = _write_then_cut_everything(cluster, 60)
    cluster.start_all(wait=90)
    missing = acked - _names(cluster)
    print(f"--no-fsync: {len(acked)} acknowledged before the cut, {len(missing)} lost")
    assert missing == acked


def test_a_new_journal_survives_a_cut_as_soon_as_its_name_is_durable(tmp_path: Path) -> None:
    """The term and vote are stored with a directory fsync, which makes the journal's *name*
    durable the first time a member votes; its header must be durable before that, or the
    member restarts on a zero-length journal that it cannot even open."""
    with LazyFS(str(tmp_path / "disk"), str(tmp_path / "mnt")) as fs:
        path = os.path.join(fs.mountpoint, "raft.journal")
        # A process that creates the journal, syncs the directory (as storing a vote does) and
        # dies: nothing of the journal is closed or flushed.
        script = (
            "import os, signal, sys\n"
            "from hakube.store.journal import SafeFileJournal\n"
            "j = SafeFileJournal(sys.argv[1])\n"
            "fd = os.open(os.path.dirname(sys.argv[1]), os.O_RDONLY)\n"
            "os.fsync(fd)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        done = subprocess.run([sys.executable, "-c", script, path], timeout=60, check=False)
        assert done.returncode == -signal.SIGKILL
        fs.power_cycle()
        assert os.path.exists(path)
        journal = SafeFileJournal(path)
        assert len(journal) == 0
        journal._destroy()


@pytest.mark.parametrize("durable", [False, True], ids=["pysyncobj-alone", "DurableMeta"])
def test_a_vote_survives_a_cut_only_when_stored_durably(tmp_path: Path, durable: bool) -> None:
    """pysyncobj on its own writes the term and vote to a side file and renames it, syncing
    nothing: a cut forgets the vote, and the member could vote again in the same term.
    ``DurableMeta`` (installed on every master) keeps it. The journal is the real one; the
    holder stands in for the SyncObj whose journal DurableMeta reaches into."""
    with LazyFS(str(tmp_path / "disk"), str(tmp_path / "mnt")) as fs:
        path = os.path.join(fs.mountpoint, "raft.journal")
        journal = SafeFileJournal(path)
        if durable:
            DurableMeta(types.SimpleNamespace(_SyncObj__raftLog=journal)).install()
        journal.setCurrentTerm(7, "m2:4321")
        journal._destroy()
        fs.power_cycle()
        journal = SafeFileJournal(path)
        remembered = (journal.getCurrentTerm(), journal.getVotedForNodeId())
        journal._destroy()
    assert remembered == ((7, "m2:4321") if durable else (0, None))


def test_a_member_cut_alone_rejoins_with_every_write_and_one_leader_per_term(
    cluster: LazyCluster,
) -> None:
    c = cluster
    with LeaderLog(c) as leaders, c.client(timeout=3) as cl, Writer(cl) as w:
        for victim_is_leader in (False, True):
            leader = c.leader()
            victim = leader if victim_is_leader else next(m for m in c.masters if m != leader)
            term_before = c.status(victim).term
            wait_for(lambda: len(w.acked) >= 20, 60, "writes before the cut")  # noqa: B023
            c.power_cut([victim])
            seen = len(w.acked)
            wait_for(lambda: len(w.acked) >= seen + 20, 60, "writes while it is down")  # noqa: B023
            c.start(victim)
            c.wait_ready([victim], timeout=90)
            assert c.status(victim).term >= term_before, "the cut member forgot its term"
            wait_for(lambda: len(w.acked) >= seen + 40, 60, "writes after it is back")  # noqa: B023
    acked = w.acked
    for m in c.masters:
        missing = acked - _names(c, m.api)
        assert not missing, f"{m.name} lacks {len(missing)} acknowledged writes"
    assert not leaders.conflicts(), f"two leaders in one term: {leaders.conflicts()}"
    assert leaders.leaders, "the leader log saw no leader at all"
    led = {t: sorted(n) for t, n in sorted(leaders.leaders.items())}
    print(f"a follower, then the leader, cut: {len(acked)} acknowledged, 0 lost; led: {led}")
